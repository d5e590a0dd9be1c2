"""The ``switchyard`` command: run the cluster, its parts, and ask the router."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.config import get_settings
from orchestrator.tiers import Tier

app = typer.Typer(help="Switchyard: an orchestration cluster for LLM work.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants and API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
console = Console()
if not console.is_terminal:
    console = Console(width=120)


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Submit the demo batch, show results, exit.")] = False,
    demo_file: Annotated[Path | None, typer.Option(help="Batch (JSONL) for --demo.")] = None,
    api_port: Annotated[int | None, typer.Option(help="API port.")] = None,
    simulator_port: Annotated[int | None, typer.Option(help="Simulator port.")] = None,
) -> None:
    """Start Redis (embedded), the database, the simulator, the API and one worker per tier."""
    from orchestrator.cluster import run_cluster

    try:
        code = run_cluster(
            console,
            demo=demo,
            demo_file=demo_file,
            api_port=api_port,
            simulator_port=simulator_port,
        )
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]switchyard up failed:[/] {exc}")
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


@app.command()
def api(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "orchestrator.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level="warning",
    )


@app.command()
def worker(
    tier: Annotated[list[Tier], typer.Option(help="Tier queue(s) to consume.")],
    concurrency: Annotated[int | None, typer.Option(help="Threads per process.")] = None,
    loglevel: Annotated[str, typer.Option()] = "WARNING",
) -> None:
    """Run a Celery worker (threads pool) on the given tier queues."""
    queues = ",".join(t.queue for t in tier)
    threads = concurrency or get_settings().worker_concurrency
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "-Q",
        queues,
        "-P",
        "threads",
        "-c",
        str(threads),
        "-n",
        f"{queues.replace(',', '+')}.{os.getpid()}@%h",
        "-l",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    os.execv(sys.executable, args)


@app.command()
def simulator(
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random +/- jitter on the latency.")] = 0.0,
) -> None:
    """Run the provider simulator (OpenAI chat-completions wire format)."""
    from orchestrator.simulator import run_simulator

    run_simulator(host, port or get_settings().simulator_port, latency_ms, jitter_ms)


@app.command()
def route(
    text: Annotated[str, typer.Argument(help="The prompt to route.")],
    max_tokens: Annotated[int, typer.Option()] = 512,
    image: Annotated[list[str] | None, typer.Option(help="Image URL(s) to attach.")] = None,
) -> None:
    """Show the tier, the reasons and the route plan the dispatcher would choose."""
    from orchestrator.catalog import load_catalog
    from orchestrator.cost import format_usd
    from orchestrator.routing import expected_cost_micro_usd
    from orchestrator.routing import route as decide
    from orchestrator.schemas import ImagePart, ImageURL, JobRequest, Message, TextPart

    parts: list[TextPart | ImagePart] = [TextPart(text=text)]
    parts += [ImagePart(image_url=ImageURL(url=u)) for u in image or []]
    request = JobRequest(messages=[Message(role="user", content=parts)], max_tokens=max_tokens)
    decision = decide(request, load_catalog(get_settings()))
    console.print(f"tier: [bold]{decision.tier.value}[/] (confidence {decision.confidence:.2f})")
    for reason in decision.reasons:
        console.print(f"  - {reason}")
    table = Table(title=f"route plan (~{decision.estimated_input_tokens} input tokens)")
    for column in ("#", "deployment", "provider", "model", "max cost"):
        table.add_column(column)
    for i, dep in enumerate(decision.plan, start=1):
        worst = expected_cost_micro_usd(dep, decision.estimated_input_tokens, max_tokens)
        table.add_row(str(i), dep.name, dep.provider, dep.model, format_usd(int(worst)))
    console.print(table)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Benchmark name: a file in loadtests/.")],
) -> None:
    """Run ``loadtests/NAME.py`` with the remaining arguments; it prints JSON."""
    from orchestrator.benchmarks import run_benchmark

    raise typer.Exit(run_benchmark(name, list(ctx.args)))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database."""
    from orchestrator.store import migrate

    url = get_settings().effective_database_url
    migrate.upgrade(url)
    console.print("database is at head")


@tenant_app.command("create")
def tenant_create(name: Annotated[str, typer.Argument()]) -> None:
    """Create a tenant and print its first API key (shown once; stored hashed)."""
    from orchestrator.store import repo
    from orchestrator.store.db import get_engine, session_scope

    with session_scope(get_engine(get_settings().effective_database_url)) as session:
        if repo.get_tenant_by_name(session, name=name) is not None:
            console.print(f"[red]tenant {name!r} exists[/]")
            raise typer.Exit(1)
        tenant = repo.create_tenant(session, name=name)
        key = repo.create_api_key(session, tenant_id=tenant.id)
    console.print(f"tenant {tenant.id} ({name})")
    print(key)


def main() -> None:
    """Entry point: a refusal prints one red line and exits 1, never a stack trace."""
    from orchestrator.errors import SwitchyardError

    try:
        app()
    except SwitchyardError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
