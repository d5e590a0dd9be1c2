"""What the ``route`` and ``eval`` commands print; imported only when one of them runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.core.catalog import load_catalog
from orchestrator.core.config import get_settings
from orchestrator.core.schemas import ImagePart, ImageURL, JobRequest, Message, TextPart
from orchestrator.costs.pricing import format_usd
from orchestrator.evaluation.data import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    read_excludes,
    read_outcomes,
)
from orchestrator.evaluation.router import evaluate_router
from orchestrator.routing import RouteDecision, StrengthPolicy, live_stats
from orchestrator.routing import calibration as calibrations
from orchestrator.routing.live_stats import DeploymentStats, LiveStats
from orchestrator.routing.objective import Candidate, estimate_all
from orchestrator.routing.scorers import get_scorer


def _policy(scorer: str | None, quality: float | None) -> StrengthPolicy:
    settings = get_settings()
    policy = StrengthPolicy.from_settings(settings)
    if scorer is not None and scorer != policy.scorer.name:
        table = calibrations.load(settings.router_calibration_path, scorer)
        policy = StrengthPolicy(get_scorer(scorer), table, policy.quality)
    if quality is not None:
        policy = StrengthPolicy(policy.scorer, policy.calibration, quality)
    return policy


def _print_step(console: Console, step: dict[str, Any]) -> None:
    score = "" if step.get("score") is None else f" score {step['score']:.3f}"
    threshold = "" if step.get("threshold") is None else f" threshold {step['threshold']:.3f}"
    console.print(f"{step['step']}: [bold]{step['choice']}[/] ({step['scorer']}{score}{threshold})")
    for reason in step.get("reasons", []):
        console.print(f"  - {reason}")


def _print_decisions(console: Console, decision: RouteDecision) -> None:
    for step in decision.record():
        _print_step(console, step)


def explain_text(
    console: Console,
    text: str,
    max_tokens: int,
    images: Sequence[str],
    scorer: str | None,
    quality: float | None,
    as_json: bool,
    *,
    strategy: str | None = None,
    objective: str | None = None,
) -> None:
    """Route ``text`` as the dispatcher would and show every decision and the plan, with
    each candidate's expected cost and predicted latency (live statistics, if reachable)."""
    from orchestrator.core.errors import ValidationFailed
    from orchestrator.pipelines.planner import route_request

    if strategy not in (None, "single", "cascade"):
        raise ValidationFailed("strategy", f"unknown strategy {strategy!r}: single or cascade")
    parts: list[TextPart | ImagePart] = [TextPart(text=text)]
    parts += [ImagePart(image_url=ImageURL(url=u)) for u in images]
    request = JobRequest.model_validate(
        {
            "messages": [Message(role="user", content=parts)],
            "max_tokens": max_tokens,
            "strategy": strategy,
            "objective": objective,
        }
    )
    catalog = load_catalog(get_settings())
    stats = _live_stats([d.name for d in catalog.deployments])
    decision = route_request(request, catalog, _policy(scorer, quality))
    tokens = decision.estimated_input_tokens
    found = estimate_all(decision.plan, tokens, max_tokens, stats)
    if as_json:
        plan = [d.name for d in decision.plan]
        candidates = [c.as_json() for c in found]
        print(json.dumps({"routing": decision.record(), "plan": plan, "candidates": candidates}))
        return
    _print_decisions(console, decision)
    console.print(_plan_table(found, tokens))
    if strategy == "cascade":
        path = " -> ".join(d.name for d in decision.plan)
        console.print(f"cascade: {path}; each answer is checked (schema, refusal, low quality)")
        console.print("  and a failed check escalates to the next deployment (PIPELINES.md)")


def _live_stats(names: list[str]) -> dict[str, DeploymentStats]:
    """The cluster's live statistics (installed for route plans too), or none without Redis."""
    import redis

    settings = get_settings()
    client = redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=1)
    stats = LiveStats(client, prefix=settings.redis_key_prefix)
    try:
        found = stats.read(names)
    except redis.RedisError:
        return {}
    live_stats.install(stats)
    return found


def _plan_table(found: Sequence[Candidate], tokens: int) -> Table:
    """One row per candidate, in plan order: expected and worst cost, predicted latency."""
    table = Table(title=f"route plan (~{tokens} input tokens)")
    columns = ("#", "deployment", "model", "strength", "expected cost", "max cost")
    for column in (*columns, "predicted latency", "error rate", "calls seen"):
        table.add_column(column)
    for i, c in enumerate(found, start=1):
        dep = c.deployment
        table.add_row(
            str(i),
            dep.name,
            dep.model,
            str(dep.strength),
            format_usd(int(c.expected_cost_micro_usd)),
            format_usd(int(c.max_cost_micro_usd)),
            f"{c.predicted_latency_ms:.0f} ms",
            f"{c.error_rate:.1%}",
            str(c.samples) if c.samples else "none (prior)",
        )
    return table


def show_job(console: Console, job_id: str, tenant: str, as_json: bool) -> None:
    """Print the routing record stored with one of ``tenant``'s jobs."""
    from orchestrator.core.errors import NotFound
    from orchestrator.store import repo
    from orchestrator.store.db import get_engine, session_scope

    with session_scope(get_engine(get_settings().effective_database_url)) as session:
        owner = repo.get_tenant_by_name(session, name=tenant)
        found = None if owner is None else repo.get_job(session, tenant_id=owner.id, job_id=job_id)
        if found is None:
            raise NotFound(f"no job {job_id!r} for tenant {tenant!r}")
        record = {"id": found.id, "tier": found.tier, "plan": list(found.plan)}
        record["routing"] = list(found.routing or [])
    if as_json:
        print(json.dumps(record, indent=1))
        return
    console.print(f"job {record['id']}: tier {record['tier']}, plan {', '.join(record['plan'])}")
    for step in record["routing"]:
        _print_step(console, step)


def _router_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"router evaluation (n={result['n']}, main scorer {result['scorer']})")
    for column in ("scorer", "APGR", "CPT(50%)", "CPT(80%)"):
        table.add_column(column)
    for name, figures in result["scorers"].items():
        cells = ["-" if figures[k] is None else f"{figures[k]:.3f}" for k in figures]
        table.add_row(name, *cells)
    return table


def run_eval_router(
    console: Console,
    data: Sequence[Path],
    fmt: str,
    scorers: Sequence[str],
    exclude: Sequence[Path],
    columns: tuple[str | None, str | None],
    plot: Path | None,
    as_json: bool,
) -> None:
    """Load outcomes, evaluate the scorers and baselines, print (and plot) the figures."""
    strong, weak = columns
    outcomes = read_outcomes(
        data, fmt, strong=strong or ROUTELLM_STRONG, weak=weak or ROUTELLM_WEAK
    )
    names = list(scorers) or [get_settings().router_scorer]
    report = evaluate_router(outcomes, names, excludes=read_excludes(exclude))
    result = report.as_json()
    if plot is not None:
        from orchestrator.evaluation.plot import plot_router

        plot_router(report, plot, title=f"{', '.join(p.name for p in data)} (n={report.outcomes})")
        result["plot"] = str(plot)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    console.print(_router_table(result))
    console.print(f"weak quality {result['weak_quality']}, strong {result['strong_quality']};")
    console.print(f"dropped: {result['excluded']}")
