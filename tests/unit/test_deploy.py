"""The deployment files are valid for the tools that will read them.

No Docker engine or cluster runs here, so each file is checked against its
published schema: docker-compose.yml against the Compose Specification (vendored
by check-jsonschema), every built-in Kubernetes object against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: unknown fields refused), and the
KEDA ScaledObject and Prometheus Operator ServiceMonitor and PodMonitor objects against schemas
written from their documented specs (tests/fixtures/schemas).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.unit.deploy_manifests import (
    BUILTIN_GROUPS,
    DEPLOY,
    REPO,
    SCHEMAS,
    Obj,
    compose_raw,
    of_kind,
    rendered,
)

KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-v1.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-v1.yaml",
}
RENDERED = rendered()
ALL_OBJECTS = [
    pytest.param(obj, id=f"{name}:{obj['kind']}/{obj['metadata']['name']}")
    for name, objs in RENDERED.items()
    for obj in objs
]


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = yaml.safe_load((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_compose_file_follows_the_compose_specification() -> None:
    # Given docker-compose.yml and the Compose Specification schema
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)

    # When the file is validated
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose_raw())]

    # Then it has no errors
    assert errors == []


def test_compose_schema_catches_a_misspelt_field() -> None:
    # Given the compose file with a field the specification does not have
    schema = compose_schema()
    broken = compose_raw()
    broken["services"]["api"]["comand"] = ["switchyard", "api"]

    # When it is validated, Then the schema refuses it (so the check above has teeth)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("obj", ALL_OBJECTS)
def test_every_kubernetes_object_validates_against_its_schema(obj: Obj) -> None:
    # Given one object of a rendered kustomization
    api_version, kind = obj["apiVersion"], obj["kind"]

    # When it is validated against its schema, Then it passes
    if api_version in BUILTIN_GROUPS:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    else:
        assert (api_version, kind) in CRD_SCHEMAS, f"no schema for {api_version} {kind}"
        crd_validator(api_version, kind).validate(obj)


def test_strict_kubernetes_validation_catches_a_misspelt_field() -> None:
    # Given a worker Deployment with a misspelt container field
    deployment = of_kind(RENDERED["base"], "Deployment")[0]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["arg"] = ["switchyard"]

    # When it is validated strictly, Then it is refused
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_keda_schema_catches_a_metrics_api_trigger_without_its_value_location() -> None:
    # Given a ScaledObject whose metrics-api trigger lost its valueLocation
    scaled = json.loads(json.dumps(of_kind(RENDERED["base"], "ScaledObject")[0]))
    del scaled["spec"]["triggers"][0]["metadata"]["valueLocation"]

    # When it is validated, Then the KEDA schema refuses it
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("keda.sh/v1alpha1", "ScaledObject").validate(scaled)


def test_podmonitor_schema_catches_a_misspelt_endpoint_field() -> None:
    # Given the workers' PodMonitor with an endpoint field the operator does not have
    monitor = json.loads(json.dumps(of_kind(RENDERED["base"], "PodMonitor")[0]))
    monitor["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"

    # When it is validated, Then the PodMonitor schema refuses it
    with pytest.raises(jsonschema.ValidationError):
        crd_validator("monitoring.coreos.com/v1", "PodMonitor").validate(monitor)


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_scaled_objects_keep_min_below_max_and_fallback_within(name: str) -> None:
    # Given every ScaledObject of a rendering
    for scaled in of_kind(RENDERED[name], "ScaledObject"):
        spec = scaled["spec"]
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        # Then the bounds are ordered (KEDA refuses the object otherwise)
        assert 0 <= low <= high, scaled["metadata"]["name"]
        assert low <= spec["fallback"]["replicas"] <= high, scaled["metadata"]["name"]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_init() -> None:
    # Given deploy/Dockerfile
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]

    # Then it builds in one stage and runs from another
    stages = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(stages) >= 2 and any("--from=build" in ln for ln in lines)
    # And it runs as a numeric non-root user, with a healthcheck and tini as PID 1
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    assert 'ENTRYPOINT ["tini", "--"]' in lines
    # And every file it copies from the build context exists
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    # Given .dockerignore, Then local venvs, state and secrets never reach the build context
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", ".switchyard", ".env", ".git"} <= ignored


def test_monitoring_files_parse_and_agree() -> None:
    # Given the Prometheus config and the Grafana provisioning and dashboard
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    grafana = DEPLOY / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())
    providers = yaml.safe_load((grafana / "provisioning/dashboards/switchyard.yml").read_text())
    dashboards = [json.loads(p.read_text()) for p in (grafana / "dashboards").glob("*.json")]

    # Then Prometheus scrapes Flower's metrics path
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"
    # And every dashboard panel queries the provisioned data source for a metric that
    # Flower or Switchyard's own code exports
    uids = {d["uid"] for d in datasources["datasources"]}
    assert dashboards and providers["providers"][0]["type"] == "file"
    for dashboard in dashboards:
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids
            for target in panel["targets"]:
                names = re.findall(r"\b(?:flower|switchyard)_\w+", target["expr"])
                assert names and all(exported(n) for n in names), target["expr"]


def exported(metric: str) -> bool:
    """The metric's name (without _total, _bucket, ... suffixes) appears in its exporter's code."""
    base = re.sub(r"_(total|bucket|count|sum|created)$", "", metric)
    if base.startswith("flower_"):
        import flower

        roots = [Path(flower.__file__).parent]
    else:
        roots = [REPO / "orchestrator", REPO / "workers"]
    return any(base in path.read_text() for root in roots for path in root.rglob("*.py"))
