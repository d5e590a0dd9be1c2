"""What the shipped strong/weak scorers' tests share: the routing data, a word problem
and a greeting, the shipped artefact as JSON, and scoring in a fresh interpreter that can
open no socket."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from orchestrator.routing.scorer_base import Scored
from orchestrator.routing.scorers import get_scorer

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
WORD_PROBLEM = (
    "A bakery sells 48 muffins on Monday and twice as many on Tuesday. On Wednesday it sells "
    "a third of Tuesday's muffins, and each muffin costs $3.50. Half of the money pays the "
    "rent, and the rest is shared equally among 4 workers. How much does each worker get?"
)
HEAVY = ("sklearn", "wordllama")  # what loading a shipped scorer must not import
SCORE_OFFLINE = """
import json, socket, sys
def blocked(*args, **kwargs):
    raise OSError("network blocked")
socket.socket.connect = blocked
socket.socket.connect_ex = blocked
socket.create_connection = blocked
socket.getaddrinfo = blocked
from orchestrator.routing.scorers import get_scorer
prompt, names, heavy = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
values = [get_scorer(name).score(prompt).value for name in names]
print(json.dumps({"values": values, "imported": [m for m in heavy if m in sys.modules]}))
"""


def shipped(artifact: str) -> dict[str, object]:
    """The shipped model file ``artifact`` (under ``orchestrator/routing/models``), parsed."""
    text = resources.files("orchestrator.routing").joinpath("models", artifact).read_text("utf-8")
    document: dict[str, object] = json.loads(text)
    return document


def hard_and_easy(name: str) -> tuple[Scored, Scored]:
    """The registry's scorer ``name`` on ``WORD_PROBLEM`` and on a greeting; the word problem
    needs the strong model more."""
    scorer = get_scorer(name)
    hard, easy = scorer.score(WORD_PROBLEM), scorer.score("hi, how are you today?")
    assert 0.0 <= easy.value < hard.value <= 1.0, (easy, hard)
    return hard, easy


def score_offline(names: Sequence[str], prompt: str) -> tuple[list[float], list[str]]:
    """Each named scorer's value on ``prompt``, loaded in turn by a fresh interpreter whose
    sockets cannot connect or resolve; and which of ``HEAVY`` it imported."""
    found = subprocess.run(
        [sys.executable, "-c", SCORE_OFFLINE, prompt, ",".join(names), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    said = json.loads(found.stdout)
    return [float(v) for v in said["values"]], list(said["imported"])
