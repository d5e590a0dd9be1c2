"""The model catalog: which deployments exist, what they serve and what they cost.

A deployment is one model at one provider endpoint, spoken to in one wire
format (``api``), with prices per million input, cached-input, cache-write and
output tokens. The default catalog ships
with the package (``catalog.yaml``) and points at the provider simulator; set
``SWITCHYARD_CATALOG_PATH`` to use your own. ``${SIMULATOR_URL}`` in a base URL
is replaced with ``Settings.simulator_url``.

A deployment whose provider offers a batch API (OpenAI's Batch API, Anthropic's
Message Batches, Gemini's batch mode) says so in ``batch``: its batch prices
(about half the synchronous ones) and the provider's limits on one batch file and
on the tokens queued per model. Jobs that can wait go that way (issue 26;
``orchestrator.routing.batch_path``).
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigError
from orchestrator.core.experiment_specs import CatalogExperiment
from orchestrator.core.tiers import Tier

WireFormat = Literal["openai", "azure", "anthropic", "gemini"]
"""How a deployment is spoken to: OpenAI chat completions (any compatible server),
Azure OpenAI (deployment URL + ``api-version``), Anthropic Messages, Gemini
``generateContent``."""
BATCH_APIS = frozenset({"openai", "anthropic", "gemini"})
"""The formats whose batch API Switchyard speaks (``workers.providers.batches``)."""


class RateLimits(BaseModel):
    """A provider's published limits for one deployment (None: unlimited)."""

    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)


class BatchOffer(BaseModel):
    """A provider's batch API for one deployment: its prices and its limits.

    Exists so the router can tell which deployments can take work that may wait,
    and the ledger what such work costs (``Deployment.batch_priced``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    input_usd_per_mtok: Decimal = Field(ge=0)
    output_usd_per_mtok: Decimal = Field(ge=0)
    cached_input_usd_per_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_usd_per_mtok: Decimal | None = Field(
        default=None, ge=0, description="Anthropic's cache writes in a batch (default: input)"
    )
    max_lines: int = Field(default=50_000, gt=0, description="requests in one batch file")
    max_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="bytes in one file")
    max_queued_tokens: int | None = Field(
        default=None, gt=0, description="input tokens queued in batches per model (None: any)"
    )


class Deployment(BaseModel):
    """One model served at one endpoint, with its prices and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    api: WireFormat = "openai"
    model: str = Field(min_length=1)
    base_url: str = Field(min_length=1)
    api_version: str | None = Field(default=None, description="Azure's api-version")
    api_key_ref: str | None = None
    tiers: tuple[Tier, ...] = Field(min_length=1)
    input_usd_per_mtok: Decimal = Field(ge=0)
    output_usd_per_mtok: Decimal = Field(ge=0)
    cached_input_usd_per_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_usd_per_mtok: Decimal | None = Field(default=None, ge=0)
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(default=8192, gt=0)
    vision: bool = False
    strength: int = Field(default=1, ge=1, description="higher is stronger")
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    batch: BatchOffer | None = Field(default=None, description="its provider's batch API")

    @model_validator(mode="after")
    def _azure_needs_version(self) -> Deployment:
        if self.api == "azure" and not self.api_version:
            raise ValueError(f"deployment {self.name}: api 'azure' needs 'api_version'")
        if self.api not in BATCH_APIS and self.batch is not None:
            raise ValueError(f"deployment {self.name}: 'batch' is not spoken for api {self.api!r}")
        return self

    @property
    def cached_input_price(self) -> Decimal:
        """USD per million prompt tokens read from the cache (default: the input price)."""
        if self.cached_input_usd_per_mtok is None:
            return self.input_usd_per_mtok
        return self.cached_input_usd_per_mtok

    @property
    def cache_write_price(self) -> Decimal:
        """USD per million prompt tokens written to the cache (default: the input price)."""
        if self.cache_write_usd_per_mtok is None:
            return self.input_usd_per_mtok
        return self.cache_write_usd_per_mtok

    def batch_priced(self) -> Deployment:
        """This deployment at its batch prices (for the cost of a provider batch's line)."""
        if self.batch is None:
            raise ValueError(f"deployment {self.name} offers no batch API")
        return self.model_copy(
            update={
                "input_usd_per_mtok": self.batch.input_usd_per_mtok,
                "output_usd_per_mtok": self.batch.output_usd_per_mtok,
                "cached_input_usd_per_mtok": self.batch.cached_input_usd_per_mtok,
                "cache_write_usd_per_mtok": self.batch.cache_write_usd_per_mtok,
            }
        )


class Catalog(BaseModel):
    """All deployments, with lookups by name, model and tier."""

    model_config = ConfigDict(extra="forbid")
    deployments: tuple[Deployment, ...] = Field(min_length=1)
    # A/B tests of routing strategies, synced into the database at API start (EXPERIMENTS.md).
    experiments: tuple[CatalogExperiment, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        names = [d.name for d in self.deployments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate deployment names: {dupes}")
        return self

    def get(self, name: str) -> Deployment:
        for dep in self.deployments:
            if dep.name == name:
                return dep
        raise KeyError(name)

    def find(self, name_or_model: str) -> Deployment | None:
        """A deployment by its name, or the cheapest one serving that model name."""
        for dep in self.deployments:
            if dep.name == name_or_model:
                return dep
        matches = [d for d in self.deployments if d.model == name_or_model]
        return min(matches, key=lambda d: d.input_usd_per_mtok, default=None)

    def for_tier(self, tier: Tier) -> list[Deployment]:
        return [d for d in self.deployments if tier in d.tiers]


def _read_yaml(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read catalog {path}: {exc}") from exc
    return resources.files("orchestrator.core").joinpath("catalog.yaml").read_text(encoding="utf-8")


def load_catalog(settings: Settings) -> Catalog:
    """Parse and validate the catalog named by the settings (or the built-in one)."""
    text = _read_yaml(settings.catalog_path).replace("${SIMULATOR_URL}", settings.simulator_url)
    try:
        data = yaml.safe_load(text)
        return Catalog.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        where = settings.catalog_path or "built-in catalog.yaml"
        raise ConfigError(f"invalid catalog {where}: {exc}") from exc
