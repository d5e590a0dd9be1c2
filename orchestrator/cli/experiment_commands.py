"""``switchyard experiments create|list|get|report|stop``: A/B tests of routing strategies.

They talk to the API with a tenant key, like ``switchyard jobs`` (see ``cli.job_commands``).
An arm is given as ``--arm "NAME key=value ..."`` (lists comma-separated), e.g.

    switchyard experiments create cheap-vs-strong --unit session \\
        --arm "cheap deployments=sim-gpt-4o-mini" --arm "strong quality=0.9 weight=1"

or the whole spec as JSON/YAML with ``--file``. ``report NAME`` prints every arm's
figures with 95% intervals and each arm's differences from control; ``--plot FILE.png``
draws them and ``--json`` prints the API's report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from orchestrator.cli.job_commands import ApiKey, ApiUrl, client
from orchestrator.client.common import checked
from orchestrator.client.sdk import Switchyard
from orchestrator.core.experiment_specs import ExperimentSpec

experiments_app = typer.Typer(help="A/B tests of routing strategies.", no_args_is_help=True)
out = Console(width=160)
LISTS = {"deployments"}
NUMBERS = {"weight", "quality", "threshold"}
SHOWN = (
    ("success_rate", "success", "{:.3f}"),
    ("fallback_rate", "fallback", "{:.3f}"),
    ("cost_per_job_micro_usd", "cost/job µUSD", "{:.1f}"),
    ("latency_p50_ms", "p50 ms", "{:.0f}"),
    ("latency_p95_ms", "p95 ms", "{:.0f}"),
    ("quality", "quality", "{:.3f}"),
)


def api(sy: Switchyard, method: str, path: str, **kwargs: Any) -> Any:
    """One API call with the SDK's connection and error mapping; the JSON answer."""
    response: httpx.Response = sy.http.request(
        method, sy.base_url + path, headers=sy.headers, **kwargs
    )
    return checked(response).json()


def parse_arm(text: str) -> dict[str, Any]:
    """``"NAME key=value ..."`` -> an arm's fields (``deployments`` comma-separated)."""
    name, *pairs = text.split()
    arm: dict[str, Any] = {"name": name}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: expected key=value", param_hint="--arm")
        try:
            arm[key] = (
                value.split(",") if key in LISTS else float(value) if key in NUMBERS else value
            )
        except ValueError as exc:
            raise typer.BadParameter(
                f"{pair!r}: {key} must be a number", param_hint="--arm"
            ) from exc
    return arm


@experiments_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Unique per tenant.")],
    arm: Annotated[list[str] | None, typer.Option(help='"NAME key=value ..." (2+ times)')] = None,
    file: Annotated[Path | None, typer.Option(help="The whole spec, JSON or YAML.")] = None,
    unit: Annotated[str, typer.Option(help="tenant, session or job")] = "job",
    control: Annotated[str | None, typer.Option(help="Control arm (default: first).")] = None,
    tier: Annotated[list[str] | None, typer.Option(help="Only these tiers.")] = None,
    judge_share: Annotated[float | None, typer.Option(help="Share of jobs graded.")] = None,
    max_error_rate_increase: Annotated[float | None, typer.Option()] = None,
    max_cost_ratio: Annotated[float | None, typer.Option()] = None,
    min_jobs: Annotated[int | None, typer.Option()] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Start an experiment; new jobs of your tenant are assigned to its arms."""
    spec: dict[str, Any] = yaml.safe_load(file.read_text("utf-8")) if file else {}
    guardrail = {
        k: v
        for k, v in {
            "max_error_rate_increase": max_error_rate_increase,
            "max_cost_ratio": max_cost_ratio,
            "min_jobs": min_jobs,
        }.items()
        if v is not None
    }
    spec |= {"name": name, "unit": spec.get("unit", unit)}
    spec |= {"judge_share": judge_share} if judge_share is not None else {}
    spec |= {"arms": [parse_arm(a) for a in arm]} if arm else {}
    spec |= {"control": control} if control else {}
    spec |= {"tiers": tier} if tier else {}
    spec |= {"guardrail": {**spec.get("guardrail", {}), **guardrail}} if guardrail else {}
    try:
        body = ExperimentSpec.model_validate(spec).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with client(api_url, api_key) as sy:
        print(json.dumps(api(sy, "POST", "/v1/experiments", json=body), indent=2))


@experiments_app.command("list")
def list_(api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """Your experiments, newest first."""
    with client(api_url, api_key) as sy:
        data = api(sy, "GET", "/v1/experiments")["data"]
    table = Table()
    for column in ("name", "status", "unit", "control", "arms", "paused", "created"):
        table.add_column(column)
    for e in data:
        arms = ", ".join(f"{a['name']}({a['weight']:g})" for a in e["arms"])
        paused = ", ".join(e["paused"]) or "-"
        table.add_row(
            e["name"], e["status"], e["unit"], e["control"], arms, paused, e["created_at"]
        )
    out.print(table)


@experiments_app.command("stop")
def stop(name: str, api_url: ApiUrl = None, api_key: ApiKey = None) -> None:
    """Stop assigning jobs; the report stays."""
    with client(api_url, api_key) as sy:
        found = api(sy, "POST", f"/v1/experiments/{name}/stop")
    out.print(f"experiment {found['name']} stopped at {found['stopped_at']}")


def _cell(figure: dict[str, Any], fmt: str) -> str:
    if figure["value"] is None:
        return "-"
    text = fmt.format(figure["value"])
    if figure["low"] is not None:
        text += f" [{fmt.format(figure['low'])}, {fmt.format(figure['high'])}]"
    return text


def print_report(report: dict[str, Any]) -> None:
    """Per-arm figures, then each arm's differences from control."""
    info = report["experiment"]
    out.print(f"experiment [bold]{info['name']}[/] ({info['status']}, unit {info['unit']})")
    arms = Table(title="per arm: value [95% interval]")
    for column in ("arm", "state", "admitted", "finished", *(label for _, label, _ in SHOWN)):
        arms.add_column(column)
    for a in report["arms"]:
        state = "control" if a["control"] else "running"
        if a["paused"]:
            state = f"PAUSED: {a['paused']['reason']}"
        cells = [_cell(a["figures"][m], fmt) for m, _, fmt in SHOWN]
        arms.add_row(a["arm"], state, str(a["admitted"]), str(a["finished"]), *cells)
    out.print(arms)
    for c in report["comparisons"]:
        diffs = Table(title=f"{c['arm']} minus {c['control']}")
        for column in ("figure", "difference [95% interval]", "p", "significant"):
            diffs.add_column(column)
        for metric, label, fmt in SHOWN:
            d = c["differences"][metric]
            cell = _cell({"value": d["diff"], "low": d["low"], "high": d["high"]}, fmt)
            p = "-" if d["p_value"] is None else f"{d['p_value']:.4f}"
            diffs.add_row(label, cell, p, "YES" if d["significant"] else "no")
        out.print(diffs)


@experiments_app.command("report")
def report(
    name: str,
    plot: Annotated[Path | None, typer.Option(help="Draw the figures to this PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Per-arm figures with 95% intervals and differences from control (significant or not)."""
    with client(api_url, api_key) as sy:
        found = api(sy, "GET", f"/v1/experiments/{name}/report")
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        print_report(found)
    if plot is not None:
        from orchestrator.experiments.arm_plot import plot_report

        plot_report(found, plot)
        out.print(f"plot written to {plot}")
