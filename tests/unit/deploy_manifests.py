"""Read the deployment files the way their tools would: compose with its .env, kustomize.

There is no Docker engine or cluster here, so the tests read the files themselves:
``compose_project()`` interpolates ``docker-compose.yml`` with ``.env.example``
(plus values for the secrets it leaves empty), and ``kustomize()`` renders a
kustomization with the subset of kustomize the manifests use (resources,
namespace, images, patches by path), refusing any other field rather than
ignoring it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_EXAMPLE = DEPLOY / "k8s" / "overlays" / "example"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMAS = REPO / "tests" / "fixtures" / "schemas"

BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1"}
CLUSTER_SCOPED = {"Namespace"}
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
# what a user puts in .env for the settings .env.example leaves empty on purpose
SECRETS_FOR_TESTS = {
    "POSTGRES_PASSWORD": "pw-for-tests",
    "REDIS_PASSWORD": "redispwfortests",
    "FLOWER_BASIC_AUTH": "admin:pw-for-tests",
    "GRAFANA_ADMIN_PASSWORD": "pw-for-tests",
}

Obj = dict[str, Any]


def load_docs(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- compose -----------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str], used: set[str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        used.add(name)
        current = env.get(name)
        empty = current is None or (current == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and empty:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and empty:
            return arg or ""
        return current or ""

    return _VAR.sub(one, value)


def _walk_interpolate(node: Any, env: dict[str, str], used: set[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, list):
        return [_walk_interpolate(item, env, used) for item in node]
    if isinstance(node, dict):
        return {key: _walk_interpolate(value, env, used) for key, value in node.items()}
    return node


def compose_raw() -> Obj:
    doc: Obj = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def compose_project(env: dict[str, str] | None = None) -> tuple[Obj, set[str]]:
    """The compose model after interpolation, and the variable names it used."""
    values = {**env_file(), **SECRETS_FOR_TESTS} if env is None else env
    used: set[str] = set()
    project: Obj = _walk_interpolate(compose_raw(), values, used)
    return project, used


# --- kustomize -----------------------------------------------------------------------


def _merge(base: Any, patch: Any, strategic: bool) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value, strategic) if key in base else value
        return merged
    if strategic and isinstance(base, list) and isinstance(patch, list) and _named(base + patch):
        by_name = {item["name"]: item for item in base}
        out = [
            _merge(by_name[p["name"]], p, strategic) if p["name"] in by_name else p for p in patch
        ]
        patched = {p["name"] for p in patch}
        return [item for item in base if item["name"] not in patched] + out
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def pod_specs(obj: Obj) -> Iterator[Obj]:
    """The pod spec of a Deployment or Job (none for other kinds)."""
    if obj["kind"] in ("Deployment", "Job"):
        yield obj["spec"]["template"]["spec"]


def containers(obj: Obj) -> Iterator[Obj]:
    for spec in pod_specs(obj):
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


def _set_images(objs: list[Obj], images: list[Obj]) -> None:
    for image in images:
        for obj in objs:
            for container in containers(obj):
                if re.split(r"[:@]", container["image"], maxsplit=1)[0] == image["name"]:
                    name = image.get("newName", image["name"])
                    tag = image.get("newTag")
                    container["image"] = f"{name}:{tag}" if tag else name


def kustomize(directory: Path) -> list[Obj]:
    """Render ``directory/kustomization.yaml`` (the subset of kustomize used here)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KUSTOMIZE_FIELDS
    assert not unknown, f"{directory}: kustomize fields this renderer does not know: {unknown}"
    objs: list[Obj] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        objs += kustomize(path) if path.is_dir() else load_docs(path)
    for patch in spec.get("patches", []):
        assert set(patch) == {"path"}, f"only patches by path are rendered here: {patch}"
        for doc in load_docs(directory / patch["path"]):
            index = find_index(objs, doc["kind"], doc["metadata"]["name"])
            strategic = doc["apiVersion"] in BUILTIN_GROUPS
            objs[index] = _merge(objs[index], doc, strategic)
    if "namespace" in spec:
        for obj in objs:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    _set_images(objs, spec.get("images", []))
    return objs


def find_index(objs: list[Obj], kind: str, name: str) -> int:
    hits = [i for i, o in enumerate(objs) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} objects"
    return hits[0]


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    return objs[find_index(objs, kind, name)]


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def rendered() -> dict[str, list[Obj]]:
    """Every kustomization in deploy/k8s, rendered, by name."""
    return {"base": kustomize(K8S_BASE), "example": kustomize(K8S_EXAMPLE)}
