"""Experiments as the API shows them: an experiment, the list, and feedback on an answer.

The declared shape (arms, guardrail) is ``orchestrator.core.experiment_specs``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.experiment_specs import ArmSpec, GuardrailSpec, Unit
from orchestrator.core.tiers import Tier


class PausedArm(BaseModel):
    """Why and when the guardrail paused an arm."""

    reason: str
    paused_at: datetime


class ExperimentView(BaseModel):
    """An experiment as the API shows it to its tenant."""

    id: str
    name: str
    status: Literal["running", "stopped"]
    unit: Unit
    tiers: list[Tier] | None
    control: str
    arms: list[ArmSpec]
    guardrail: GuardrailSpec
    judge_share: float
    paused: dict[str, PausedArm] = Field(default_factory=dict)
    source: str
    created_at: datetime
    stopped_at: datetime | None = None


class ExperimentList(BaseModel):
    """The tenant's experiments, newest first."""

    data: list[ExperimentView]


class FeedbackRequest(BaseModel):
    """A quality score for one job's answer (0 worst, 1 best)."""

    model_config = ConfigDict(extra="forbid")
    score: float = Field(ge=0, le=1)
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackView(BaseModel):
    """A stored score."""

    id: str
    job_id: str
    score: float
    source: str
    comment: str | None = None
    created_at: datetime


ReportDict = dict[str, Any]
