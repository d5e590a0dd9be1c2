"""What every strong/weak scorer is: ``Scorer`` (one abstract method), its verdict
``Scored``, ``sigmoid``, and the prompts the shipped scorers were developed on.

The scorers themselves and their registry are ``routing.scorers``; the fitted
ones (``learned``, ``gain``) import this module, not the registry.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError

HELD_IN_FILE = "held_in.txt"


@dataclass(frozen=True)
class Scored:
    """A scorer's verdict on one prompt: 0 (weak is enough) .. 1 (needs strong), and why."""

    value: float
    reasons: tuple[str, ...]


def prompt_key(text: str) -> str:
    """The short hash under which held-in prompts are recorded (exact text, UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@cache
def held_in_keys() -> frozenset[str]:
    """Keys of the prompts the shipped scorers were developed or trained on."""
    path = resources.files("orchestrator.routing").joinpath("models", HELD_IN_FILE)
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and line[0] != "#")


def trained_part(model_path: Path | None, key: str) -> tuple[dict[str, Any], str] | None:
    """The ``key`` part of a ``route train`` model file (``SWITCHYARD_ROUTER_MODEL_PATH``)
    and its origin, or None when there is no file or the file has no such part (the
    training rows carried no scores): the scorer then loads its shipped artefact."""
    if model_path is None:
        return None
    try:
        document = json.loads(Path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read router model {model_path}: {exc}") from exc
    if not isinstance(document, dict) or key not in document:
        return None
    return document[key], f"{model_path} ({key})"


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


class Scorer(ABC):
    """One way of scoring prompts; subclasses implement ``score`` and nothing else."""

    name: str = ""
    uses_held_in: bool = False  # developed on the prompts listed in ``models/held_in.txt``

    @abstractmethod
    def score(self, text: str) -> Scored:
        """How much ``text`` needs the strong model, in [0, 1], with reasons."""

    def score_in_tier(self, text: str, tier: str) -> Scored:
        """``score`` for a request that named its tier; a scorer that weighs the tier
        (``tiered``) takes the named one instead of guessing it."""
        return self.score(text)

    def held_in(self, text: str) -> bool:
        """True if this scorer was developed or trained on ``text`` (never report it)."""
        return self.uses_held_in and prompt_key(text) in held_in_keys()
