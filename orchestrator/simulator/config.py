"""What the simulator is told to behave like, per model: latency, failures, limits.

A config is ``{default: Profile, models: {name: Profile}}``; a model without its
own profile uses ``default``. It is read from YAML or JSON (``--config FILE``),
passed to ``create_simulator_app(config=...)``, or replaced at run time with
``PUT /_sim/config``.

Latency is lognormal, fitted so that its median is ``latency_p50_ms`` and its
99th percentile ``latency_p99_ms`` (a p99 at or below the p50 means a fixed
latency). Error rates are independent probabilities per request, tried in a
fixed order; a "timeout" hangs ``timeout_s`` and then answers 504.

The ``batch_*`` knobs shape the providers' batch APIs (``simulator.batch_store``):
how long a batch takes, the share of its lines that fail, and which batches expire.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

ErrorKind = Literal["429", "500", "503", "529", "timeout", "malformed", "400"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("429", "500", "503", "529", "timeout", "malformed", "400")
Z_99 = 2.3263478740408408  # the standard normal's 99th percentile


class Profile(BaseModel):
    """How one model behaves: latency distribution, injected failures, limits, window."""

    model_config = ConfigDict(extra="forbid")
    latency_p50_ms: float = Field(default=0.0, ge=0)
    latency_p99_ms: float = Field(default=0.0, ge=0)
    error_rates: dict[ErrorKind, float] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, ge=0)
    rpm_limit: int | None = Field(default=None, gt=0)
    tpm_limit: int | None = Field(default=None, gt=0)
    context_window: int | None = Field(default=None, gt=0)
    # Bad answers on purpose, per input (orchestrator.simulator.faults).
    invalid_json_rate: float = Field(default=0.0, ge=0, le=1)
    refusal_rate: float = Field(default=0.0, ge=0, le=1)
    fault_draw: Literal["hash", "even"] = "hash"
    # Provider batches (orchestrator.simulator.batch_store).
    batch_processing_s: float = Field(default=0.0, ge=0, le=172_800)
    batch_line_error_rate: float = Field(default=0.0, ge=0, le=1)
    batch_expire_rate: float = Field(default=0.0, ge=0, le=1)
    batch_expire_max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _rates_are_probabilities(self) -> Profile:
        for kind, rate in self.error_rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"error_rates[{kind!r}] must be in [0, 1], got {rate}")
        return self

    def sample_latency_ms(self, rng: random.Random) -> float:
        """One latency draw from the fitted lognormal (0 when no latency is set)."""
        p50 = self.latency_p50_ms
        if p50 <= 0:
            return 0.0
        if self.latency_p99_ms <= p50:
            return p50
        sigma = math.log(self.latency_p99_ms / p50) / Z_99
        return rng.lognormvariate(math.log(p50), sigma)

    def draw_error(self, rng: random.Random) -> ErrorKind | None:
        """The failure to inject into this request, if any."""
        for kind in ERROR_KINDS:
            rate = self.error_rates.get(kind, 0.0)
            if rate > 0 and rng.random() < rate:
                return kind
        return None


class SimulatorConfig(BaseModel):
    """The whole simulator's behaviour: a default profile and per-model overrides."""

    model_config = ConfigDict(extra="forbid")
    default: Profile = Field(default_factory=Profile)
    models: dict[str, Profile] = Field(default_factory=dict)

    def profile(self, model: str) -> Profile:
        return self.models.get(model, self.default)


def load_config(path: Path) -> SimulatorConfig:
    """A config from a YAML or JSON file (JSON is YAML, so one parser reads both)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return SimulatorConfig.model_validate(data or {})
