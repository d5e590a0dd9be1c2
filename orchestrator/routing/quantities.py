"""How much a prompt asks to keep track of: counts a person can check by reading it.

The ``gain`` scorer reads these beside the ``complexity`` features and the
encoder's embedding. Inside maths word problems (GSM8K), the strong model's
advantage grows with the quantities, statements and relations to combine:

    quantities   log(1 + numbers written in digits or words: "48", "twice", "half")
    sentences    log(1 + sentence ends)
    clauses      log(1 + commas and "and"s)
    comparisons  log(1 + "more", "less", "fewer", "times", "than")
    rates        log(1 + "each", "per", "every")

Only the ``complexity`` window of the text is read (head and tail).
"""

from __future__ import annotations

import math
import re

from orchestrator.routing.complexity import window

_NUMBER = re.compile(r"\d[\d,.]*")
_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty"
    r"|thirty|forty|fifty|hundred|thousand|dozen|twice|double|triple|half|third|quarter"
    r"|fourth|fifth)\b"
)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_COMPARISON = re.compile(r"\b(?:more|less|fewer|times|than)\b")
_RATE = re.compile(r"\b(?:each|per|every)\b")

NAMES: tuple[str, ...] = ("quantities", "sentences", "clauses", "comparisons", "rates")


def counts(text: str) -> dict[str, int]:
    """The raw counts behind the features (for reasons)."""
    seen = window(text)
    lower = seen.lower()
    return {
        "quantities": len(_NUMBER.findall(seen)) + len(_NUMBER_WORDS.findall(lower)),
        "sentences": len(_SENTENCE_END.findall(seen)),
        "clauses": seen.count(",") + lower.count(" and "),
        "comparisons": len(_COMPARISON.findall(lower)),
        "rates": len(_RATE.findall(lower)),
    }


def vector(found: dict[str, int]) -> dict[str, float]:
    """``log(1 + count)`` of each count: the units the scorer's weights expect."""
    return {name: math.log1p(found[name]) for name in NAMES}
