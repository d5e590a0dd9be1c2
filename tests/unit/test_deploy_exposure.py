"""What the deployment files expose: only the API on the host, Redis behind a password.

The files are read as their tools would (``deploy_manifests``): compose
interpolated with ``.env.example`` and the secrets a user fills in, the
kustomizations rendered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from orchestrator.core.config import Settings
from tests.unit.deploy_manifests import (
    SECRETS_FOR_TESTS,
    compose_project,
    env_file,
    of_kind,
    rendered,
)

COMPOSE, _ = compose_project()
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}
RENDERED = rendered()


def settings_of(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in {**env_file(), **SERVICES[service].get("environment", {})}.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def test_compose_publishes_only_the_api_beyond_loopback() -> None:
    # Given every port compose publishes on the host
    published = {name: [str(p) for p in svc.get("ports", [])] for name, svc in SERVICES.items()}
    # Then the API is published, and every other port only on 127.0.0.1
    assert published["api"] and all(not p.startswith("127.0.0.1:") for p in published["api"])
    for name, ports in published.items():
        if name != "api":
            assert all(p.startswith("127.0.0.1:") for p in ports), (name, ports)
    assert {n for n, ports in published.items() if ports} >= {"flower", "prometheus", "grafana"}
    # And Redis and Postgres are not published at all
    assert not published["redis"] and not published["postgres"]


def test_compose_redis_asks_for_a_password_that_every_process_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = SECRETS_FOR_TESTS["REDIS_PASSWORD"]
    # Given compose's Redis, Then it requires the password from .env
    command = SERVICES["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == password
    # And its health check authenticates (redis-cli reads REDISCLI_AUTH)
    assert SERVICES["redis"]["environment"]["REDISCLI_AUTH"] == password
    # And .env.example leaves it for the user to set (compose refuses to start without it)
    assert env_file()["REDIS_PASSWORD"] == ""
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        compose_project({**env_file(), **SECRETS_FOR_TESTS, "REDIS_PASSWORD": ""})
    # And every Switchyard service connects with it
    for name in OURS:
        url = urlsplit(settings_of(name, monkeypatch).effective_redis_url)
        assert url.hostname == "redis" and url.password == password, name


def test_worker_metrics_bind_loopback_unless_a_container_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given no settings, Then a worker serves its metrics on 127.0.0.1 only
    assert Settings().worker_metrics_host == "127.0.0.1"
    # And compose's workers bind their container's address (scraped over the compose
    # network, never published)
    workers = [n for n, svc in OURS.items() if "worker" in svc["command"]]
    for name in workers:
        assert settings_of(name, monkeypatch).worker_metrics_host == "0.0.0.0"
        assert not SERVICES[name].get("ports"), name


def test_kubernetes_exposes_services_inside_the_cluster_only() -> None:
    for name, objs in RENDERED.items():
        # Given a rendering, Then every Service is a ClusterIP one (no node port, no
        # load balancer: exposing the API is the operator's ingress's job)
        for service in of_kind(objs, "Service"):
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", (name, service)
    # And the example Secret's Redis URL carries a password
    [secret] = [
        s
        for s in of_kind(RENDERED["example"], "Secret")
        if s["metadata"]["name"] == "switchyard-secrets"
    ]
    assert urlsplit(secret["stringData"]["SWITCHYARD_REDIS_URL"]).password
