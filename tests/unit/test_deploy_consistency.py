"""The deployment files start real commands, on the ports and with the settings the code reads.

Each test reads both sides: the manifests (docker-compose.yml with .env.example,
the rendered kustomizations, the Dockerfile) and the code (the Typer CLI, the
Settings fields, the API and simulator routes, Flower's options and handlers).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from orchestrator.api.app import create_app
from orchestrator.cli.main import app as cli_app
from orchestrator.core.config import Settings
from orchestrator.core.tiers import ALL_TIERS
from orchestrator.queues.depth import QueueDepth
from orchestrator.simulator import create_simulator_app
from tests.unit.deploy_manifests import (
    DEPLOY,
    ENV_EXAMPLE,
    Obj,
    compose_project,
    containers,
    env_file,
    find,
    of_kind,
    rendered,
)

RENDERED = rendered()
COMPOSE, COMPOSE_VARIABLES = compose_project()
SERVICES: dict[str, Obj] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
SETTING_VARS = {f"SWITCHYARD_{name.upper()}" for name in Settings.model_fields}


def dockerfile_json(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert match, instruction
    value: list[str] = json.loads(match.group(1))
    return value


def manifest_commands() -> dict[tuple[str, ...], list[str]]:
    """Every command the files start with the Switchyard image -> where it is used."""
    found: dict[tuple[str, ...], list[str]] = {}
    found.setdefault(tuple(dockerfile_json("CMD")), []).append("Dockerfile CMD")
    for name, svc in OURS.items():
        found.setdefault(tuple(svc.get("command", dockerfile_json("CMD"))), []).append(name)
    for rendering, objs in RENDERED.items():
        for obj in objs:
            for container in containers(obj):
                where = f"{rendering}:{obj['kind']}/{obj['metadata']['name']}"
                found.setdefault(tuple(container["args"]), []).append(where)
    return found


def command_params() -> Iterator[object]:
    for argv, where in sorted(manifest_commands().items()):
        yield pytest.param(argv, where, id=" ".join(argv))


def parse_switchyard(argv: tuple[str, ...]) -> dict[str, object]:
    """Parse ``switchyard ...`` with the real CLI, without running it; returns the params."""
    command = get_command(cli_app)
    ctx: typer.Context | None = None
    name, args = "switchyard", list(argv[1:])
    while isinstance(command, typer.core.TyperGroup):
        ctx = typer.Context(command, info_name=name, parent=ctx)
        sub = command.get_command(ctx, args[0]) if args else None
        assert sub is not None, f"`{' '.join(argv)}`: no such command {args[:1]}"
        command, name, args = sub, args[0], args[1:]
    params: dict[str, object] = command.make_context(name, args, parent=ctx).params
    return params


def option(argv: tuple[str, ...] | list[str], flag: str) -> str:
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


def api_paths(tmp_path: Path) -> set[str]:
    """Every path the API serves: its OpenAPI paths and those kept out of the schema."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", state_dir=tmp_path)
    app = create_app(settings)
    hidden = {getattr(route, "path", "") for route in app.routes} - {""}
    return set(app.openapi()["paths"]) | hidden


def flower_paths() -> set[str]:
    from flower.urls import handlers

    return {h[0] if isinstance(h, tuple) else h.regex.pattern.rstrip("$") for h in handlers}


def pod_labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize(("argv", "where"), list(command_params()))
def test_every_command_in_the_deployment_files_is_a_real_command(
    argv: tuple[str, ...], where: list[str]
) -> None:
    # Given a command the Dockerfile, compose or a kustomization starts
    # When it is parsed by the program it names
    if argv[0] == "switchyard":
        params = parse_switchyard(argv)
        # Then the CLI accepts it (subcommand, options and values)
        assert isinstance(params, dict), where
    else:
        # Then it is Flower through Celery, on the app whose Broker tab works
        assert argv[:4] == ("celery", "-A", "orchestrator.queues.flower_app", "flower"), where
        assert "flower" in {ep.name for ep in entry_points(group="celery.commands")}
        from flower.options import options

        for arg in argv[4:]:
            assert arg.lstrip("-").split("=")[0] in options._options, arg


def test_worker_commands_size_their_pools_and_name_their_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given each tier's worker command of the example overlay (one tier runs 128 threads)
    workers = [
        a for a in manifest_commands() if a[:2] == ("switchyard", "worker") and "--lane" not in a
    ]
    assert "128" in {option(a, "--concurrency") for a in workers}
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda _p, args, env: calls.append((args, env)))
    monkeypatch.setattr(os, "execv", lambda *_: pytest.fail("the worker must set its env"))
    for argv in workers:
        calls.clear()

        # When it starts, on a host named host-a
        result = CliRunner().invoke(cli_app, [*argv[1:], "--hostname", "host-a"])

        # Then Celery runs that many threads, and the runtime, which sizes its HTTP and
        # database pools from SWITCHYARD_WORKER_CONCURRENCY, is told the same number
        assert result.exit_code == 0, result.output
        args, env = calls[0]
        threads = option(argv, "--concurrency")
        assert option(args, "-c") == env["SWITCHYARD_WORKER_CONCURRENCY"] == threads
        # And its Celery node name carries the tier and the host name
        assert re.fullmatch(rf"{option(argv, '--tier')}\.\d+@host-a", option(args, "-n"))


def test_every_switchyard_variable_in_the_files_is_a_setting() -> None:
    # Given every environment variable name the files set
    names = set(env_file()) | set(
        re.findall(r"^# (SWITCHYARD_\w+)=", ENV_EXAMPLE.read_text(), re.M)
    )
    names |= {key for svc in OURS.values() for key in svc.get("environment", {})}
    for objs in RENDERED.values():
        for obj in of_kind(objs, "ConfigMap"):
            names |= set(obj["data"])
        for obj in of_kind(objs, "Secret"):
            names |= set(obj.get("stringData", {}))
        for obj in objs:
            names |= {e["name"] for c in containers(obj) for e in c.get("env", [])}

    # Then each SWITCHYARD_* one is a field of Settings
    assert sorted(n for n in names if n.startswith("SWITCHYARD_") and n not in SETTING_VARS) == []
    # And each FLOWER_* one is an option Flower reads from its environment
    from flower.options import options

    flower = {n for n in names if n.startswith("FLOWER_")}
    assert flower == {"FLOWER_BASIC_AUTH"}
    assert all(
        n.removeprefix("FLOWER_").lower().replace("_", "-") in options._options for n in flower
    )


def compose_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    env = {**env_file(), **SERVICES[service].get("environment", {})}
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def k8s_settings(objs: list[Obj], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for obj in of_kind(objs, "ConfigMap") + of_kind(objs, "Secret"):
        for key, value in {**obj.get("data", {}), **obj.get("stringData", {})}.items():
            monkeypatch.setenv(key, value)
    return Settings()


def test_the_settings_in_the_files_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the environment compose and the example overlay give a worker
    # When Settings reads it, Then it validates and points at the services of the files
    settings = compose_settings("worker-fast", monkeypatch)
    assert urlsplit(settings.effective_database_url).hostname == "postgres"
    assert urlsplit(settings.effective_redis_url).hostname == "redis"
    assert urlsplit(settings.simulator_url).hostname == "simulator"
    settings = k8s_settings(RENDERED["example"], monkeypatch)
    sim = urlsplit(settings.simulator_url)
    service = find(RENDERED["example"], "Service", str(sim.hostname))
    assert sim.port == service["spec"]["ports"][0]["port"]


def test_every_compose_variable_is_documented_in_env_example() -> None:
    # Given the ${VARIABLES} compose interpolates and the ones .env.example documents
    documented = set(env_file())

    # Then each one compose uses is documented, and each documented one is used
    assert sorted(COMPOSE_VARIABLES - documented) == []
    unused = documented - COMPOSE_VARIABLES - SETTING_VARS - {"COMPOSE_PROFILES"}
    assert sorted(unused) == []
    # And the simulator profile is on by default, so a fresh .env gives a working cluster
    assert "simulator" in env_file()["COMPOSE_PROFILES"].split(",")
    assert SERVICES["simulator"]["profiles"] == ["simulator"]


def test_each_tier_has_workers_an_autoscaler_and_a_disruption_budget() -> None:
    tiers = {t.value for t in ALL_TIERS}
    # Given compose, Then there is one worker service per tier, on that tier's queue
    tier_workers = [s["command"] for s in OURS.values() if "worker" in s["command"]]
    compose_tiers = [option(c, "--tier") for c in tier_workers if "--lane" not in c]
    assert sorted(compose_tiers) == sorted(tiers)
    for objs in RENDERED.values():
        # Given a rendering, Then each tier has one worker Deployment on its queue
        workers = {
            option(c["args"], "--tier"): d
            for d in of_kind(objs, "Deployment")
            for c in containers(d)
            if c["args"][:2] == ["switchyard", "worker"] and "--lane" not in c["args"]
        }
        assert set(workers) == tiers
        scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(objs, "ScaledObject")}
        for tier, deployment in workers.items():
            # And a ScaledObject on that Deployment reads that tier's backlog
            trigger = scaled[deployment["metadata"]["name"]]["spec"]["triggers"][0]
            assert trigger["metadata"]["valueLocation"] == f"{tier}.depth"
            # And a PodDisruptionBudget selects exactly its pods
            budgets = [
                p
                for p in of_kind(objs, "PodDisruptionBudget")
                if p["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
            ]
            assert len(budgets) == 1, tier
        assert "depth" in QueueDepth.model_fields


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_an_interactive_lane_runs_on_every_tier(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the interactive-lane worker of compose, or of the example overlay
    if where == "compose":
        (argv,) = [s["command"] for s in OURS.values() if "--lane" in s["command"]]
    else:
        commands = manifest_commands().items()
        (argv,) = [a for a, at in commands if "--lane" in a and any("Deployment/" in w for w in at)]
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda _p, args, env: calls.append((args, env)))
    # When it starts
    result = CliRunner().invoke(cli_app, [*argv[1:], "--hostname", "host-a"])
    # Then it consumes every tier's queue, on the interactive lane, under a name saying so
    assert result.exit_code == 0, result.output
    args, env = calls[0]
    assert option(args, "-Q").split(",") == [t.queue for t in ALL_TIERS]
    assert env["SWITCHYARD_WORKER_LANE"] == "interactive"
    assert re.fullmatch(
        r"interactive\.fast\+reasoning\+vision\+code\.\d+@host-a", option(args, "-n")
    )


def test_autoscalers_call_the_api_queue_endpoint(tmp_path: Path) -> None:
    paths = api_paths(tmp_path)
    for objs in RENDERED.values():
        api = find(objs, "Service", "switchyard-api")
        namespace = api["metadata"]["namespace"]
        for scaled in of_kind(objs, "ScaledObject"):
            # Given a tier's trigger URL
            url = urlsplit(scaled["spec"]["triggers"][0]["metadata"]["url"])
            # Then it names the API Service by its cluster DNS name, on its port
            assert url.hostname == f"switchyard-api.{namespace}.svc.cluster.local"
            assert url.port == api["spec"]["ports"][0]["port"]
            # And its path is the API's queue-depth route
            assert url.path in paths and url.path == "/queues"


def test_ports_and_probe_paths_match_what_the_processes_serve(tmp_path: Path) -> None:
    paths = api_paths(tmp_path)
    simulator_paths = set(create_simulator_app().openapi()["paths"])
    served = {"api": (paths, "--port"), "simulator": (simulator_paths, "--port")}
    served["flower"] = (flower_paths(), "--port")
    # Given each Deployment with a container port (rendered example overlay)
    for deployment in of_kind(RENDERED["example"], "Deployment"):
        for container in containers(deployment):
            if "ports" not in container or container["ports"][0]["name"] == "metrics":
                continue  # a worker's metrics port: test_worker_metrics_are_scraped
            routes, flag = served[deployment["metadata"]["labels"]["app.kubernetes.io/component"]]
            # Then the port it declares is the one its command listens on
            assert container["ports"][0]["containerPort"] == int(option(container["args"], flag))
            # And each probe asks a path the process serves
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["path"] in routes
    # And compose publishes the same container ports its commands listen on
    for name in ("api", "flower", "simulator"):
        svc = SERVICES[name]
        port = int(option(svc["command"], "--port"))
        assert all(p.endswith(f":{port}") for p in svc.get("ports", [f":{port}"]))
        health = urlsplit(svc.get("environment", {}).get("HEALTHCHECK_URL", ""))
        assert health.port in (None, port)
    # And the image's default healthcheck asks the API's liveness path on its port
    default = re.search(r"HEALTHCHECK_URL', '([^']+)'", DOCKERFILE)
    assert default and urlsplit(default.group(1)).path in paths
    assert urlsplit(default.group(1)).port == int(option(dockerfile_json("CMD"), "--port"))


def test_worker_grace_period_outlasts_the_longest_job(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the settings the files give workers, the longest a job can run is its deadline
    # plus one provider call started just before it
    settings = k8s_settings(RENDERED["example"], monkeypatch)
    longest_s = settings.job_deadline_s + settings.provider_timeout_s
    for objs in RENDERED.values():
        for deployment in of_kind(objs, "Deployment"):
            if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "worker":
                # Then every worker pod's grace period is longer
                grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                assert grace > longest_s, deployment["metadata"]["name"]
    # And so is every compose worker's stop_grace_period
    for name, svc in OURS.items():
        if "worker" in svc["command"]:
            value = re.fullmatch(r"(\d+)m", svc["stop_grace_period"])
            assert value and int(value.group(1)) * 60 > longest_s, name


def test_selectors_find_their_pods(tmp_path: Path) -> None:
    served = {"api": api_paths(tmp_path), "flower": flower_paths()}
    for objs in RENDERED.values():
        pods = [pod_labels(o) for o in objs if o["kind"] in ("Deployment", "Job")]
        for deployment in of_kind(objs, "Deployment"):
            # Given a Deployment, Then its selector matches its own pod template
            selector = deployment["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels(deployment).items()
        for service in of_kind(objs, "Service"):
            # Given a Service, Then it selects some pods, on a port they name
            selected = [p for p in pods if service["spec"]["selector"].items() <= p.items()]
            assert selected, service["metadata"]["name"]
        for monitor in of_kind(objs, "ServiceMonitor"):
            # Given a ServiceMonitor, Then it selects a Service with the port it scrapes
            labels = monitor["spec"]["selector"]["matchLabels"]
            services = [
                s
                for s in of_kind(objs, "Service")
                if labels.items() <= s["metadata"]["labels"].items()
            ]
            assert len(services) == 1
            names = {p["name"] for p in services[0]["spec"]["ports"]}
            # And each endpoint's path is one the selected process serves
            paths = served[services[0]["metadata"]["labels"]["app.kubernetes.io/component"]]
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in names and endpoint["path"] in paths


def test_worker_metrics_are_scraped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the settings the example overlay gives every process
    settings = k8s_settings(RENDERED["example"], monkeypatch)
    objs = RENDERED["example"]
    [monitor] = of_kind(objs, "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    workers = [d for d in of_kind(objs, "Deployment") if selector.items() <= pod_labels(d).items()]
    # Then the PodMonitor selects a worker Deployment per tier and the interactive lane's,
    # and nothing else
    assert sorted(pod_labels(d).get("switchyard.dev/tier", "lane") for d in workers) == sorted(
        [t.value for t in ALL_TIERS] + ["lane"]
    )
    assert {pod_labels(d)["app.kubernetes.io/component"] for d in workers} == {"worker"}
    # And each worker container names the scraped port, on the port the worker serves
    # its metrics on (from SWITCHYARD_WORKER_METRICS_PORT), on every interface
    assert settings.worker_metrics_port > 0 and settings.worker_metrics_host == "0.0.0.0"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    for deployment in workers:
        [container] = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[endpoint["port"]] == settings.worker_metrics_port, deployment["metadata"]
    # And compose gives its workers the same port, which its Prometheus scrapes
    assert compose_settings("worker-fast", monkeypatch).worker_metrics_port == 9101
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    dns = jobs["switchyard-workers"]["dns_sd_configs"][0]
    assert dns["port"] == 9101
    assert set(dns["names"]) == {n for n, svc in OURS.items() if "worker" in svc["command"]}


def test_the_admin_key_is_a_secret_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the example Secret and .env.example, Then both carry the admin key, empty
    # (the admin API off) until the operator sets a real one
    [secret] = [
        s
        for s in of_kind(RENDERED["example"], "Secret")
        if s["metadata"]["name"] == "switchyard-secrets"
    ]
    assert secret["stringData"]["SWITCHYARD_ADMIN_API_KEY"] == ""
    assert env_file()["SWITCHYARD_ADMIN_API_KEY"] == ""
    assert "SWITCHYARD_ADMIN_API_KEY" not in of_kind(RENDERED["example"], "ConfigMap")[0]["data"]
    # And the empty value starts the processes with the admin API off, not refused
    assert k8s_settings(RENDERED["example"], monkeypatch).admin_api_key is None
    assert compose_settings("api", monkeypatch).admin_api_key is None


def test_compose_runs_migrations_first_and_keeps_its_data() -> None:
    # Given compose, Then the migration service runs `switchyard db upgrade` once
    assert OURS["migrate"]["command"] == ["switchyard", "db", "upgrade"]
    assert OURS["migrate"]["restart"] == "no"
    # And every other Switchyard service but the simulator waits for it to succeed
    for name, svc in OURS.items():
        if name not in ("migrate", "simulator"):
            assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # And Redis keeps an append-only file and Postgres a volume
    redis = SERVICES["redis"]
    assert option(redis["command"], "--appendonly") == "yes"
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgres"]["volumes"])
    # And the monitoring services mount files that exist
    for name in ("prometheus", "grafana"):
        for volume in SERVICES[name]["volumes"]:
            if volume.startswith("./"):
                assert (DEPLOY.parent / volume.split(":")[0]).exists(), volume


def test_readme_has_a_scaling_guide_and_a_sizing_table() -> None:
    # Given deploy/README.md, Then it explains per-tier scaling and has the sizing table
    text = (DEPLOY / "README.md").read_text()
    assert "## Scaling a tier" in text
    assert "| tier |" in text and "switchyard bench latency" in text
