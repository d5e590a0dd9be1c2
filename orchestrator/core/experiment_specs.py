"""What an experiment of routing strategies is made of (issue 11), as the API and catalog see it.

    ExperimentSpec        name, unit (tenant | session | job), tiers, arms, control,
                          guardrail, judge share
    └── ArmSpec           a named routing strategy with a weight: scorer, threshold or
                          quality (strong share), objective, allowed deployments
    GuardrailSpec         when an arm is paused relative to control

This module imports nothing from routing or the catalog, so the catalog can
declare experiments (``CatalogExperiment``) without an import cycle. Checks that
need the catalog (known scorers and deployments) live in
``orchestrator.experiments.assignment.check_spec``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.core.tiers import Tier

Unit = Literal["tenant", "session", "job"]
Objective = Literal["cost", "latency", "quality", "balanced"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ArmSpec(BaseModel):
    """One arm: a named routing strategy and its share of the traffic (``weight``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    scorer: str | None = Field(default=None, description="strong/weak scorer by name")
    quality: float | None = Field(default=None, ge=0, le=1, description="strong share")
    threshold: float | None = Field(default=None, ge=0, le=1, description="fixed score threshold")
    objective: Objective | None = None
    deployments: list[str] | None = Field(
        default=None, min_length=1, description="only these deployments may serve the arm's jobs"
    )

    @model_validator(mode="after")
    def _threshold_or_quality(self) -> ArmSpec:
        if self.threshold is not None and self.quality is not None:
            raise ValueError("give 'threshold' or 'quality', not both")
        return self


class GuardrailSpec(BaseModel):
    """Limits relative to control; an arm over one (after ``min_jobs``) is paused."""

    model_config = ConfigDict(extra="forbid")
    max_error_rate_increase: float | None = Field(
        default=0.10, gt=0, le=1, description="failed-call share over control's, absolute"
    )
    max_cost_ratio: float | None = Field(
        default=None, gt=1, description="cost per job over control's, as a ratio"
    )
    min_jobs: int = Field(
        default=30,
        ge=5,
        le=100_000,
        description="evidence per arm first: calls (error check) or finished jobs (cost check)",
    )


class ExperimentSpec(BaseModel):
    """What a client gives to create an experiment (``POST /v1/experiments``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    unit: Unit = "job"
    arms: list[ArmSpec] = Field(min_length=2, max_length=10)
    control: str | None = Field(
        default=None, description="the arm compared against (default: first)"
    )
    tiers: list[Tier] | None = Field(default=None, min_length=1, description="enrolled tiers")
    guardrail: GuardrailSpec = Field(default_factory=GuardrailSpec)
    judge_share: float = Field(default=0.0, ge=0, le=1, description="share of jobs graded")

    @model_validator(mode="after")
    def _arms_named_once(self) -> ExperimentSpec:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the arms {names}")
        return self

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name


class CatalogExperiment(ExperimentSpec):
    """An experiment declared in the catalog YAML, for the tenant it names."""

    tenant: str = Field(min_length=1)
