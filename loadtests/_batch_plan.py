"""What the provider-batch benchmark runs: its two deployments, simulator and cluster.

Two deployments of two providers, each declaring a batch API at half its
synchronous prices. A provider goes only if the workers have a batch adapter
for its wire format, asked the way a worker asks (``BatchContext.adapter``), so
the choice follows the code: while only OpenAI's wire has one, the second
provider is another OpenAI-shaped one (Groq's Batch API is OpenAI's Files and
Batches under ``/openai/v1``, at half price); once Anthropic's or Gemini's
adapter exists, that provider is taken instead.

The simulator fails ``line_error_rate`` of the batch lines and lets exactly one
provider batch expire (the first of the first deployment's model: rate 1, at
most 1); the catalog caps a batch file at ``lines_per_batch`` lines, so the
expired batch is one of several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import create_engine

from loadtests._cluster import ClusterSpec
from orchestrator.admission.dispatch import BatchSpec
from orchestrator.core.catalog import Catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest

WIRE_FORMATS = ("openai", "anthropic", "gemini")


@dataclass(frozen=True)
class Candidate:
    """A provider whose batch API the bench may use: wire, model, sync and batch prices."""

    provider: str
    api: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float

    @property
    def name(self) -> str:
        return f"pb-{self.provider}"

    def deployment(self, lines_per_batch: int) -> dict[str, Any]:
        """Its catalog entry: sync prices, and a batch API at exactly half of them."""
        return {
            "name": self.name,
            "provider": self.provider,
            "api": self.api,
            "model": self.model,
            "base_url": "${SIMULATOR_URL}",
            "tiers": ["fast"],
            "input_usd_per_mtok": self.input_usd_per_mtok,
            "output_usd_per_mtok": self.output_usd_per_mtok,
            "context_window": 128000,
            "max_output_tokens": 4096,
            "batch": {
                "input_usd_per_mtok": self.input_usd_per_mtok / 2,
                "output_usd_per_mtok": self.output_usd_per_mtok / 2,
                "max_lines": lines_per_batch,
            },
        }


# In order of preference; prices are the providers' list prices (USD per million tokens).
CANDIDATES = (
    Candidate("openai", "openai", "gpt-4o", 2.50, 10.00),
    Candidate("anthropic", "anthropic", "claude-sonnet-4", 3.00, 15.00),
    Candidate("gemini", "gemini", "gemini-2.5-flash", 0.30, 2.50),
    Candidate("groq", "openai", "llama-3.3-70b-versatile", 0.59, 0.79),
)


def batch_wire_formats() -> list[str]:
    """The wire formats the workers can send by provider batch (a worker's own check)."""
    from workers.batch_context import BatchContext

    found: list[str] = []
    probes = [Candidate(api, api, "probe", 1.0, 1.0).deployment(10) for api in WIRE_FORMATS]
    catalog = Catalog.model_validate({"deployments": probes})
    with httpx.Client() as http:
        ctx = BatchContext(
            settings=Settings(),
            catalog=catalog,
            engine=create_engine("sqlite://"),  # never connected: adapter() reads no rows
            http=http,
            owner="probe",
            scheduler=lambda due, delay_s: None,
        )
        for dep in catalog.deployments:
            if ctx.adapter(dep) is not None:
                found.append(dep.api)
    return found


@dataclass(frozen=True)
class Plan:
    """The run's two deployments, and why the second provider is the one it is."""

    candidates: tuple[Candidate, Candidate]
    batch_wire_formats: tuple[str, ...]
    why: str

    @property
    def providers(self) -> list[str]:
        return [c.provider for c in self.candidates]


def choose(wires: list[str]) -> Plan:
    """OpenAI, and the first other provider with a batch adapter of another wire format;
    without one, the other OpenAI-shaped provider."""
    usable = [c for c in CANDIDATES if c.api in wires]
    first = usable[0] if usable else CANDIDATES[0]
    others = [c for c in usable if c.provider != first.provider]
    other_wire = [c for c in others if c.api != first.api]
    if other_wire:
        why = f"{other_wire[0].provider} has a batch adapter ({other_wire[0].api} wire)"
        return Plan((first, other_wire[0]), tuple(wires), why)
    second = others[0] if others else CANDIDATES[-1]
    only = ", ".join(wires) or "no"
    why = f"only the {only} wire has a batch adapter: a second OpenAI-shaped provider"
    return Plan((first, second), tuple(wires), why)


def simulator(processing_s: float, line_error_rate: float, expiring_model: str) -> dict[str, Any]:
    """Every batch takes ``processing_s`` and fails ``line_error_rate`` of its lines;
    the first batch of ``expiring_model`` expires (and only that one)."""
    profile: dict[str, Any] = {
        "batch_processing_s": processing_s,
        "batch_line_error_rate": line_error_rate,
        "fault_draw": "even",  # exactly that share of each model's lines, not about it
    }
    expiring = profile | {"batch_expire_rate": 1.0, "batch_expire_max": 1}
    return {"default": profile, "models": {expiring_model: expiring}}


KNOBS = {
    "PROVIDER_BATCH_ENABLED": "true",
    "PROVIDER_BATCH_GATHER_S": "2",
    "PROVIDER_BATCH_POLL_S": "1",
    "PROVIDER_BATCH_POLL_MAX_S": "3",
    "RECONCILE_INTERVAL_S": "0.5",
    "RECONCILE_GRACE_S": "2",
    "JOB_LEASE_S": "10",
    "PROVIDER_TIMEOUT_S": "5",
}


def cluster_spec(
    plan: Plan,
    *,
    processing_s: float,
    line_error_rate: float,
    lines_per_batch: int,
    concurrency: int = 16,
) -> ClusterSpec:
    """One worker process (a kill hits the worker doing the step), the reconciler, no API."""
    return ClusterSpec(
        deployments=[c.deployment(lines_per_batch) for c in plan.candidates],
        simulator=simulator(processing_s, line_error_rate, plan.candidates[0].model),
        workers=1,
        tiers=("fast",),
        concurrency=concurrency,
        knobs=dict(KNOBS),
    )


WINDOW = BatchSpec(completion_window="24h")


def requests(n: int, plan: Plan) -> list[JobRequest]:
    """``n`` jobs, alternately pinned to the two deployments (a native batch's lines)."""
    names = [c.name for c in plan.candidates]
    return [
        JobRequest(
            prompt=f"Provider batch bench {i}: summarise why work that can wait costs less.",
            tier="fast",
            model=names[i % 2],
            max_tokens=512,
            custom_id=f"pb-{i}",
        )
        for i in range(n)
    ]
