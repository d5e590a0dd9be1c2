"""pyproject's bounds match what the code relies on, and the lock files pin all of it.

The bounds are read from pyproject.toml (``packaging`` evaluates them as pip
does); the lock files are the ones the Makefile and the Dockerfile install from.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from kombu.messaging import Producer
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", re.MULTILINE)


def requirements(extra: str | None = None) -> dict[str, Requirement]:
    lines = PROJECT["dependencies"] + (PROJECT["optional-dependencies"][extra] if extra else [])
    found: dict[str, Requirement] = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            found[canonicalize_name(requirement.name)] = requirement
    return found


def pins(lock: str) -> dict[str, str]:
    text = (REPO / lock).read_text()
    return {canonicalize_name(name): pinned for name, pinned in PIN.findall(text)}


@pytest.mark.parametrize(
    ("name", "too_old", "needed"),
    [
        ("kombu", "5.6.2", "Producer.batch"),
        ("celery", "5.6.3", "kombu 5.7"),
        ("starlette", "0.39.2", "the multipart form limits"),
        ("python-multipart", "0.0.17", "the boundary parsing fix"),
    ],
)
def test_lower_bounds_refuse_versions_without_what_the_code_needs(
    name: str, too_old: str, needed: str
) -> None:
    # Given the package's requirement in pyproject.toml
    spec = requirements()[name].specifier
    # Then a release without what the code needs is refused, and the installed one is not
    assert not spec.contains(too_old), f"{name} {too_old} lacks {needed}"
    assert spec.contains(version(name))


def test_what_the_bounds_stand_for_is_there() -> None:
    # kombu's Producer.batch (orchestrator.queues.app.publish) and httpx's private
    # Client._transport_for_url (workers.providers.transport)
    assert callable(Producer.batch)
    assert callable(httpx.Client._transport_for_url)


def test_a_private_api_is_bounded_to_the_minor_series_it_was_read_in() -> None:
    # Given httpx, whose private Client._transport_for_url the workers call
    spec = requirements()["httpx"].specifier
    major, minor = (int(part) for part in version("httpx").split(".")[:2])
    # Then the installed version passes and the next minor series does not
    assert spec.contains(version("httpx"))
    assert not spec.contains(f"{major}.{minor + 1}.0")


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-test.lock", "test")]
)
def test_each_lock_pins_every_dependency_within_its_bounds(lock: str, extra: str | None) -> None:
    pinned = pins(lock)
    # Given each requirement of the package (and of the extra), Then the lock pins it
    # to a version its bounds allow (a stale lock after a pyproject edit fails here:
    # run `make lock`)
    for name, requirement in requirements(extra).items():
        assert name in pinned, f"{lock} does not pin {name}: run make lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {requirement.specifier}: run make lock"
        )


def test_ci_and_the_image_install_from_the_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    # The Makefile installs the test lock, then the package without resolving again,
    # and reinstalls when pyproject.toml or the lock changes
    assert "install --quiet -r $(TEST_LOCK)" in makefile
    assert "install --quiet --no-deps -e ." in makefile
    assert "$(STAMP): pyproject.toml $(TEST_LOCK)" in makefile
    assert re.search(r"^lock:", makefile, re.MULTILINE)
    # And the image installs the runtime lock, then the package with --no-deps
    assert "pip install -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
