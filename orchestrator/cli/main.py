"""The ``switchyard`` command: run the cluster, its parts, and ask the router."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console

from orchestrator.cli.admin_commands import keys_app, tenants_app
from orchestrator.cli.experiment_commands import experiments_app
from orchestrator.cli.job_commands import batches_app, jobs_app, submit
from orchestrator.cli.routing_commands import eval_app, route_app
from orchestrator.cli.usage_commands import budget_command, usage_command
from orchestrator.core.config import Lane, get_settings
from orchestrator.core.tiers import Tier

app = typer.Typer(help="Switchyard: an orchestration cluster for LLM work.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants and API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant", hidden=True)  # kept for scripts; see `tenants`
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.add_typer(batches_app, name="batches")
app.command()(submit)
app.add_typer(route_app, name="route")
app.command("usage")(usage_command)  # COSTS.md
tenants_app.command("budget")(budget_command)
app.add_typer(eval_app, name="eval")
app.add_typer(experiments_app, name="experiments")
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
    from orchestrator.cluster.up import run_cluster

    if demo_file is not None and not demo_file.is_file():
        console.print(f"[red]error:[/] --demo-file {demo_file}: no such file")
        raise typer.Exit(2)
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
    hostname: Annotated[
        str, typer.Option(help="Host part of the Celery node name (default: this host's name).")
    ] = "%h",
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics here (0: none).")
    ] = None,
    lane: Annotated[
        Lane,
        typer.Option(help="interactive: only interactive jobs, on threads a batch never holds."),
    ] = Lane.ALL,
) -> None:
    """Run a Celery worker (threads pool) on the given tier queues.

    Refuses to start while a deployment of the catalog outside the simulator has no
    provider key configured (``orchestrator.cluster.provider_keys``).
    """
    _require_provider_keys()
    queues = ",".join(t.queue for t in tier)
    node = queues.replace(",", "+")
    if lane is not Lane.ALL:
        node = f"{lane.value}.{node}"
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
        f"{node}.{os.getpid()}@{hostname}",
        "-l",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    # the worker's runtime sizes its HTTP and database pools from this setting
    env = {**os.environ, "SWITCHYARD_WORKER_CONCURRENCY": str(threads)}
    env["SWITCHYARD_WORKER_LANE"] = lane.value  # the broker channel's steps (queues.app)
    if metrics_port is not None:
        env["SWITCHYARD_WORKER_METRICS_PORT"] = str(metrics_port)
    os.execve(sys.executable, args, env)


def _require_provider_keys() -> None:
    from rich.markup import escape

    from orchestrator.cluster.provider_keys import require_provider_keys
    from orchestrator.core.catalog import load_catalog
    from orchestrator.core.errors import ConfigError

    settings = get_settings()
    try:
        require_provider_keys(load_catalog(settings), settings)
    except ConfigError as exc:
        console.print("[red]switchyard worker:[/]", escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from exc


@app.command()
def simulator(
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random +/- jitter on the latency.")] = 0.0,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON behaviour per model: latency, errors, limits, window."),
    ] = None,
) -> None:
    """Run the provider simulator (OpenAI, Anthropic and Gemini wire formats)."""
    import yaml

    from orchestrator.simulator import load_config, run_simulator

    try:
        behaviour = load_config(config) if config is not None else None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        console.print(f"[red]invalid simulator config {config}:[/] {exc}")
        raise typer.Exit(2) from exc
    port = port or get_settings().simulator_port
    run_simulator(host, port, latency_ms, jitter_ms, config=behaviour)


class _Periodic(Protocol):
    """A background process body: one pass, or passes until interrupted."""

    def run_once(self) -> object: ...

    def run_forever(self) -> None: ...


def _run_periodic(process: _Periodic, *, once: bool) -> None:
    """``--once`` prints one pass; otherwise log at INFO and loop until Ctrl-C."""
    import contextlib
    import logging

    if once:
        console.print(process.run_once())
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        process.run_forever()


@app.command()
def reconciler(
    interval: Annotated[float | None, typer.Option(help="Seconds between passes.")] = None,
    once: Annotated[bool, typer.Option(help="Run one pass, print it, exit.")] = False,
) -> None:
    """Re-publish lost work from the database, and expire jobs past their deadline."""
    from orchestrator.services.reconciler import build_reconciler

    settings = get_settings()
    if interval is not None:
        settings = settings.model_copy(update={"reconcile_interval_s": interval})
    _run_periodic(build_reconciler(settings), once=once)


@app.command()
def notifier(
    interval: Annotated[float | None, typer.Option(help="Seconds between passes.")] = None,
    once: Annotated[bool, typer.Option(help="Run one pass, print it, exit.")] = False,
) -> None:
    """Send completion webhooks (signed, retried with backoff) for jobs and batches that ended."""
    from orchestrator.services.notifier import build_notifier

    settings = get_settings()
    if interval is not None:
        settings = settings.model_copy(update={"notifier_interval_s": interval})
    _run_periodic(build_notifier(settings), once=once)


@app.command()
def flower(
    port: Annotated[int | None, typer.Option(help="Port (default SWITCHYARD_FLOWER_PORT).")] = None,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run Flower on the workers' broker: live workers, tasks (job ids only) and queues."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestrator.queues.flower_app",
        "flower",
        f"--port={port or get_settings().flower_port}",
        f"--address={address}",
    ]
    os.execv(sys.executable, args)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Benchmark name: a file in loadtests/.")],
) -> None:
    """Run ``loadtests/NAME.py`` with the remaining arguments; it prints JSON."""
    from orchestrator.cli.bench_commands import run_benchmark

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
    from orchestrator.core.errors import SwitchyardError

    try:
        app()
    except SwitchyardError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
