"""The learned tier classifier: shipped artefact, offline loading, vision rule, reasons."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.core.catalog import Catalog, load_catalog
from orchestrator.core.config import Settings
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier
from orchestrator.evaluation.data import read_tier_examples
from orchestrator.evaluation.tiers import evaluate_tiers, with_image
from orchestrator.routing import classify, encoder, tier_model
from orchestrator.routing.classify import stages_of
from orchestrator.routing.tier_model import ARTIFACT, TierModel
from orchestrator.routing.train import tier_fit, tiers
from orchestrator.routing.train.tier_data import CORPUS, file_digests

SHIPPED = Path(tiers.MODELS) / ARTIFACT
MODEL = stages_of("model")
CLEAR = [
    ("Write a Python function that returns the n-th Fibonacci number.", Tier.CODE),
    ("Solve for x: 3x + 7 = 22. Show your steps.", Tier.REASONING),
    ("Write a haiku about the first snow of winter.", Tier.FAST),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Settings())


def _no_network(*args: object, **kwargs: object) -> None:
    raise OSError("network blocked by the test")


def test_shipped_model_loads_and_classifies_with_sockets_blocked(
    monkeypatch: pytest.MonkeyPatch, catalog: Catalog
) -> None:
    # Given a process with no network, and nothing loaded yet
    monkeypatch.setattr(socket, "socket", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(encoder, "_loaded", None)
    monkeypatch.setattr(tier_model, "_models", {})
    # When the default classifier routes clear prompts of each tier
    found = [classify(JobRequest(prompt=text), catalog, MODEL) for text, _ in CLEAR]
    # Then the model (not a rule) decides each one, correctly
    assert [c.tier for c in found] == [tier for _, tier in CLEAR]
    assert {c.classifier for c in found} == {"tier-model"}


@pytest.mark.parametrize(
    "text",
    [
        "Write a Python function that parses this chart",
        "Prove that the angles of this triangle sum to 180 degrees",
        "def f(x):\n    return x ** 2\n# what does this plot look like?",
        "",
    ],
)
def test_an_image_job_only_ever_goes_to_vision(catalog: Catalog, text: str) -> None:
    # Given a request with an image, whatever its text (code, maths, nothing)
    request = with_image(JobRequest(prompt=text or " "))
    # When the learned classifier decides
    found = classify(request, catalog, MODEL)
    # Then it is vision, by rule, before the model is asked
    assert found.tier is Tier.VISION and found.classifier == "tier-rules"


def test_the_decision_shows_every_tier_probability_and_its_reasons(catalog: Catalog) -> None:
    # Given a code prompt
    found = classify(JobRequest(prompt=CLEAR[0][0]), catalog, MODEL)
    # Then every tier has a probability, they sum to one, the tier is the likeliest
    assert found.probabilities is not None
    assert set(found.probabilities) == {"fast", "reasoning", "code"}
    assert sum(found.probabilities.values()) == pytest.approx(1.0, abs=0.01)
    assert found.confidence == max(found.probabilities.values())
    # And the reasons give the probabilities and what pushed the decision
    assert found.reasons[0].startswith("P code ")
    assert found.reasons[1].startswith("code over ") and "embedding" in found.reasons[1]


def test_a_model_trained_with_another_encoder_is_refused() -> None:
    # Given the shipped artefact, edited to claim another encoder window
    artefact = json.loads(SHIPPED.read_text(encoding="utf-8"))
    artefact["encoder"]["window"] = [10, 10]
    # When it is loaded, Then it is refused, naming why
    with pytest.raises(Exception, match="encoder"):
        TierModel(artefact, "edited")


def test_the_training_script_rebuilds_the_shipped_artefact_exactly() -> None:
    # Given the corpus files the shipped artefact records, and no others in the corpus
    shipped = SHIPPED.read_text(encoding="utf-8")
    recorded = json.loads(shipped)["training"]
    assert file_digests(sorted(CORPUS.glob("*.jsonl"))) == recorded["files"], "retrain"
    # When the training command runs again, as a user runs it (in a process of its own,
    # which holds OpenBLAS to the kernels the artefact was fitted with on any x86-64 CPU)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    command = [sys.executable, "-m", "orchestrator.routing.train.tiers", "--check"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    # Then it writes the same bytes
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"rebuilt_identical": True}


def test_the_training_command_holds_openblas_to_one_kernel_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenBLAS picks kernels by CPU (SkylakeX on one machine, Haswell on another) and
    their sums round differently: the command starts again with them pinned."""
    execs: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda *a: execs.append(a))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    tier_fit.run_pinned("orchestrator.routing.train.tiers", ["--check"])
    assert len(execs) == 1
    assert execs[0][1][1:] == ["-m", "orchestrator.routing.train.tiers", "--check"]
    assert execs[0][2]["OPENBLAS_CORETYPE"] == tier_fit.BLAS_CORE
    # Already pinned, or not x86-64: it goes on in this process
    monkeypatch.setenv("OPENBLAS_CORETYPE", tier_fit.BLAS_CORE)
    tier_fit.run_pinned("orchestrator.routing.train.tiers", [])
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    tier_fit.run_pinned("orchestrator.routing.train.tiers", [])
    assert len(execs) == 1


@pytest.mark.parametrize(
    ("name", "floor"), [("hard_prompts_dev.jsonl", 0.85), ("skills_dev.jsonl", 0.85)]
)
def test_the_model_keeps_its_development_figures(catalog: Catalog, name: str, floor: float) -> None:
    # Given a development set written blind to the corpus (never trained on)
    examples = read_tier_examples([CORPUS.parent / "dev" / name], "jsonl")
    # When the shipped model classifies it, Then it stays above the floor ROUTING.md reports
    found = evaluate_tiers(examples, catalog, MODEL)
    assert found["accuracy"] >= floor, found["confusion"]
