"""What the classifier's stages look at (`Scan`) and what they return (`Classification`)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from orchestrator.core.catalog import Catalog
from orchestrator.core.schemas import JobRequest
from orchestrator.core.tiers import Tier

SCAN_HEAD_CHARS = 6_000
SCAN_TAIL_CHARS = 2_000
SNIPPET_CHARS = 40
THRESHOLD = 1.0
_TO_SPACE = str.maketrans({c: " " for c in string.punctuation if c not in "+#"})


@dataclass(frozen=True)
class Classification:
    """The tier a request belongs to, how sure the classifier is (0..1), and why.

    ``classifier`` names what decided (a rule, or the learned model, which also
    gives every tier's probability).
    """

    tier: Tier
    confidence: float
    reasons: tuple[str, ...]
    classifier: str = "tier-rules"
    probabilities: dict[str, float] | None = None


@dataclass(frozen=True)
class Leaning:
    """Clues a scored stage found that were too weak to decide its tier."""

    tier: Tier
    score: float
    reasons: tuple[str, ...]


@dataclass
class Scan:
    """The request as the stages see it: a bounded text window, computed once.

    ``lower`` and ``words`` are computed on first use: the learned model's
    pipeline never reads them.
    """

    request: JobRequest
    catalog: Catalog
    text: str
    total_chars: int
    leanings: list[Leaning] = field(default_factory=list)

    @classmethod
    def of(cls, request: JobRequest, catalog: Catalog) -> Scan:
        full = request.prompt_text()
        text = full
        if len(full) > SCAN_HEAD_CHARS + SCAN_TAIL_CHARS:
            text = f"{full[:SCAN_HEAD_CHARS]}\n\n{full[-SCAN_TAIL_CHARS:]}"
        return cls(request, catalog, text, len(full))

    @cached_property
    def lower(self) -> str:
        return self.text.lower()

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(self.lower.translate(_TO_SPACE).split())

    def snippet(self, start: int, end: int) -> str:
        """Text between the offsets, in its original case, squeezed and shortened."""
        found = self.text[start:end] if len(self.lower) == len(self.text) else self.lower[start:end]
        found = " ".join(found.split())
        return found if len(found) <= SNIPPET_CHARS else found[: SNIPPET_CHARS - 1] + "…"


class Stage(Protocol):
    """One step of the pipeline: decide the tier, or pass (None)."""

    def __call__(self, scan: Scan) -> Classification | None: ...


class Signal(Protocol):
    """A clue toward a tier: its weight and a human-readable reason, or None."""

    @property
    def label(self) -> str: ...

    def weigh(self, scan: Scan) -> tuple[float, str] | None: ...
