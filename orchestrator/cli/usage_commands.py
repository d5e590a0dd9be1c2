"""``switchyard usage`` (spend through the API) and ``switchyard tenants budget`` (database).

``usage`` prints a rich table of ``GET /v1/usage`` and, with ``--plot FILE.png``,
draws spend over time by tier (needs the ``plot`` extra: matplotlib).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.job_commands import ApiKey, ApiUrl, client
from orchestrator.core.errors import ConfigError
from orchestrator.costs.pricing import format_usd

console = Console(stderr=True)
MEASURES = ("calls", "billed_calls", "cache_hits", "unbilled_attempts", "cost_micro_usd")


def usage_command(
    group_by: Annotated[
        str, typer.Option(help="Comma list: tier,provider,model,deployment,day,kind.")
    ] = "tier",
    since: Annotated[
        str | None, typer.Option(help="First UTC day (default: 1st of the month).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Last UTC day (default: today).")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write spend per day by tier to this PNG.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Your spend: a table grouped as asked, spend by path and what provider batches saved,
    budgets and warnings; --plot draws it by tier."""
    with client(api_url, api_key) as sy:
        report = sy.get_usage(group_by=group_by, since=since, until=until)
        if plot is not None:
            by_day = sy.get_usage(group_by="day,tier", since=since, until=until)
            plot_spend(by_day["data"], plot)
            report["plot"] = str(plot)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    out = Console()
    out = out if out.is_terminal else Console(width=160)
    groups = list(report["group_by"])
    table = Table(title=f"usage {report['since']} .. {report['until']} (UTC days)")
    for column in (*groups, "calls", "billed", "cache hits", "failed (unbilled)", "cost"):
        table.add_column(column, justify="left" if column in groups else "right")
    for row in [*report["data"], {**report["total"], **{g: "total" for g in groups[:1]}}]:
        cells = [str(row.get(g, "")) for g in groups]
        counts = [str(row.get(m, 0)) for m in MEASURES[:-1]]
        table.add_row(*cells, *counts, format_usd(int(row.get("cost_micro_usd", 0))))
    out.print(table)
    paths = report.get("by_path")
    if paths is not None:
        batch = paths["provider_batch"]
        out.print(
            f"by path: sync {format_usd(paths['sync']['cost_micro_usd'])},"
            f" provider batch {format_usd(batch['cost_micro_usd'])}"
            f" ({batch['billed_calls']} calls; {format_usd(batch['at_sync_prices_micro_usd'])}"
            f" at sync prices, saved {format_usd(batch['saved_micro_usd'])})"
        )
    for budget in report.get("budgets", []):
        if budget["limit_micro_usd"] is not None:
            used = budget["spent_micro_usd"] + budget["reserved_micro_usd"]
            out.print(
                f"{budget['period']} budget {format_usd(budget['limit_micro_usd'])}:"
                f" {format_usd(used)} spent or reserved"
            )
    for warning in report.get("warnings", []):
        out.print(f"[yellow]warning:[/] {warning}")
    if "plot" in report:
        out.print(f"plot written to {report['plot']}")


def plot_spend(rows: list[dict[str, Any]], path: Path) -> None:
    """Stacked bars of spend (USD) per UTC day, one colour per tier."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'switchyard-llm[plot]'") from exc
    days = sorted({str(r["day"]) for r in rows})
    spend: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        spend[str(r["tier"])][str(r["day"])] = int(r["cost_micro_usd"]) / 1_000_000
    figure, axes = plt.subplots(figsize=(9, 5))
    bottom = [0.0] * len(days)
    for tier in sorted(spend):
        heights = [spend[tier].get(d, 0.0) for d in days]
        axes.bar(days, heights, bottom=bottom, label=tier)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_xlabel("day (UTC)")
    axes.set_ylabel("spend (USD)")
    axes.set_title("spend per day by tier" if days else "spend per day by tier (no spend yet)")
    axes.legend(loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def budget_command(
    tenant: Annotated[str, typer.Argument(help="Tenant name or id.")],
    daily_usd: Annotated[float | None, typer.Option(min=0, help="Daily budget in USD.")] = None,
    monthly_usd: Annotated[float | None, typer.Option(min=0, help="Monthly budget in USD.")] = None,
    warn_at: Annotated[float, typer.Option(min=0.01, max=1.0, help="Warning ratio.")] = 0.8,
    objective: Annotated[
        str | None, typer.Option(help="cost, latency, quality or balanced.")
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="single or cascade (cheapest first) by default.")
    ] = None,
) -> None:
    """Set a tenant's budgets (omitted: unlimited), warning ratio and default objective."""
    from orchestrator.cli.admin_commands import _engine, _tenant_id
    from orchestrator.costs.budgets import TenantPolicy, set_budget, usd_to_micro
    from orchestrator.routing.objective import OBJECTIVES
    from orchestrator.store.db import session_scope

    if objective is not None and objective not in OBJECTIVES:
        console.print(f"[red]--objective must be one of {', '.join(OBJECTIVES)}[/]")
        raise typer.Exit(2)
    if strategy is not None and strategy not in ("single", "cascade"):
        console.print("[red]--strategy must be single or cascade[/]")
        raise typer.Exit(2)
    policy = TenantPolicy(
        usd_to_micro(daily_usd), usd_to_micro(monthly_usd), warn_at, objective, strategy
    )
    with session_scope(_engine()) as session:
        set_budget(session, tenant_id=_tenant_id(session, tenant), policy=policy)
    daily = "unlimited" if daily_usd is None else f"${daily_usd}"
    monthly = "unlimited" if monthly_usd is None else f"${monthly_usd}"
    console.print(f"tenant {tenant}: daily {daily}, monthly {monthly}, warning at {warn_at:.0%}")
