"""``switchyard up``: the whole cluster on one machine, as child processes.

Order: embedded Redis (unless ``SWITCHYARD_REDIS_URL`` is set), database
migration and a tenant key, then the simulator, the API, one worker per tier
and one on the interactive lane of every tier (each serving Prometheus metrics
on its own port), the reconciler, the webhook notifier and Flower. Ctrl-C (or
the end of ``--demo``) stops them in order: the API, then the workers and daemons
(running jobs finish or go back to the queue), then the simulator, then Redis.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from rich.console import Console

from orchestrator.cluster.bootstrap import ensure_tenant_key, prepare_database
from orchestrator.cluster.demo import DEMO_BATCH, run_demo
from orchestrator.cluster.embedded_redis import start_redis
from orchestrator.cluster.supervisor import Supervisor
from orchestrator.core.config import get_settings
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.store.db import get_engine

# Stop order (Supervisor.stop): the highest layer first; workers and daemons take the default.
LAYER_API = 3
LAYER_SIMULATOR = 0
LAYER_REDIS = -1


def run_cluster(
    console: Console,
    *,
    demo: bool,
    demo_file: Path | None,
    api_port: int | None,
    simulator_port: int | None,
) -> int:
    """Run until Ctrl-C (or until the demo is done); returns the exit code."""
    settings = get_settings()
    state = settings.state_path
    api_port = api_port or settings.api_port
    sim_port = simulator_port or settings.simulator_port
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    env = {
        "SWITCHYARD_STATE_DIR": str(state),
        "SWITCHYARD_DATABASE_URL": settings.effective_database_url,
        "SWITCHYARD_REDIS_URL": settings.effective_redis_url,
        "SWITCHYARD_SIMULATOR_URL": sim_url,
    }
    supervisor = Supervisor(env=env, log_dir=state / "logs")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    started = time.monotonic()
    try:
        if settings.embedded_redis:
            redis_proc = start_redis(settings.embedded_redis_port, state / "redis")
            supervisor.adopt("redis", redis_proc, layer=LAYER_REDIS)
            console.print(f"redis      embedded on 127.0.0.1:{settings.embedded_redis_port}")
        prepare_database(settings.effective_database_url)
        api_key = ensure_tenant_key(
            get_engine(settings.effective_database_url),
            state_dir=state,
            api_key=settings.bootstrap_api_key,
        )
        console.print(f"database   {_redact(settings.effective_database_url)} (migrated)")
        supervisor.spawn("simulator", "simulator", "--port", str(sim_port), layer=LAYER_SIMULATOR)
        supervisor.spawn(
            "api", "api", "--port", str(api_port), "--host", settings.api_host, layer=LAYER_API
        )
        base = settings.worker_metrics_base_port
        for i, tier in enumerate(ALL_TIERS):
            metrics = ("--metrics-port", str(base + i)) if base else ()
            supervisor.spawn(f"worker-{tier.value}", "worker", "--tier", tier.value, *metrics)
        tiers = [arg for tier in ALL_TIERS for arg in ("--tier", tier.value)]
        metrics = ("--metrics-port", str(base + len(ALL_TIERS))) if base else ()
        supervisor.spawn("worker-interactive", "worker", "--lane", "interactive", *tiers, *metrics)
        supervisor.spawn("reconciler", "reconciler")
        supervisor.spawn("notifier", "notifier")
        if settings.flower_port:
            supervisor.spawn("flower", "flower", "--port", str(settings.flower_port))
        supervisor.wait_http(f"http://127.0.0.1:{sim_port}/healthz")
        api_url = f"http://{settings.api_host}:{api_port}"
        supervisor.wait_http(f"{api_url}/readyz")
        console.print(f"simulator  {sim_url}")
        console.print(f"api        {api_url}")
        console.print(f"api key    {api_key}  (tenant 'demo'; also in {state / 'demo.key'})")
        console.print(
            f"workers    {', '.join(t.value for t in ALL_TIERS)}, interactive lane"
            f"  (logs in {state / 'logs'})"
        )
        _print_monitoring(console, settings.flower_port, api_url, base)
        console.print(f"ready in {time.monotonic() - started:.1f}s")
        if demo:
            ok = run_demo(api_url, api_key, demo_file or DEMO_BATCH, console)
            return 0 if ok else 1
        console.print("press Ctrl-C to stop")
        while True:
            supervisor.check_alive()
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping...")
        return 0
    finally:
        supervisor.stop()


def _print_monitoring(console: Console, flower_port: int, api_url: str, base: int) -> None:
    if flower_port:
        console.print(
            f"flower     http://127.0.0.1:{flower_port}  (Broker tab: one queue per tier)"
        )
    ports = f"; workers on :{base}-{base + len(ALL_TIERS)}" if base else ""  # the lane last
    console.print(f"metrics    {api_url}/metrics{ports}")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
