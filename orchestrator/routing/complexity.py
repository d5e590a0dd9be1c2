"""How hard a prompt looks, as a few named numbers, in pure Python.

Both strong/weak scorers read these: ``rules`` weighs them by hand, ``learned``
with weights fitted on the training split (see ``train/``). Each feature is
something a person can check by reading the prompt:

    size       log(1 + words)      long problems take more steps
    fractions  0 or 1              fractions, ratios, halves: where weak models slip
    parts      0 or 1              several statements or scenarios judged together
    numbers    log(1 + numbers)    quantities to keep track of
    asks_work  0 or 1              "prove", "derive", "step by step", "optimize"...
    chars      log(1 + characters)
    operators  log(1 + operators)  = + * / ^ < >
    long_words share of words of 9+ letters (jargon: recall more than reasoning)
    questions  log(1 + question marks)

Only a bounded window of the text is read (head and tail, as in the tier scan),
so a 400,000-character prompt costs about what an 8,000-character one does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

HEAD_CHARS = 6_000
TAIL_CHARS = 2_000

_WORD = re.compile(r"[a-z]+")
_NUMBER = re.compile(r"\d[\d,.]*")
_DIGIT_FRACTION = re.compile(r"\d\s*/\s*\d")
_FRACTION_WORDS = frozenset(
    [
        "half",
        "halves",
        "third",
        "thirds",
        "quarter",
        "quarters",
        "fourth",
        "fourths",
        "fifth",
        "fifths",
        "ratio",
        "proportion",
    ]
)
_WORK_WORDS = frozenset(
    [
        "prove",
        "proof",
        "derive",
        "derivation",
        "optimize",
        "optimise",
        "algorithm",
        "complexity",
        "rigorous",
        "justify",
        "tradeoff",
        "tradeoffs",
    ]
)
_STEP_BY_STEP = ("step by step", "step-by-step")
_PARTS = re.compile(
    r"\b(?:Scenario|Statement) 1\b|^\s*(?:I|1)[.)]\s.*^\s*(?:II|2)[.)]\s", re.MULTILINE | re.DOTALL
)
_PARTS_MARKS = ("Scenario 1", "Statement 1", "II")
_OPERATOR = re.compile(r"[=+*/^<>\u00d7\u00f7]")

FEATURES: tuple[str, ...] = (
    "size",
    "fractions",
    "parts",
    "numbers",
    "asks_work",
    "chars",
    "operators",
    "long_words",
    "questions",
)


def window(text: str) -> str:
    """The head and tail of ``text`` that the features read."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]}\n{text[-TAIL_CHARS:]}"


@dataclass(frozen=True)
class Complexity:
    """The features of one prompt, plus the raw counts that explain them."""

    words: int
    numbers: int
    chars: int
    fractions: bool
    parts: bool
    asks_work: bool
    operators: int
    long_words: float
    questions: int

    @classmethod
    def of(cls, text: str) -> Complexity:
        seen = window(text)
        lower = seen.lower()
        words = _WORD.findall(lower)
        vocabulary = frozenset(words)
        scale = len(text) / len(seen) if seen else 1.0  # words beyond the window, estimated
        fractions = not _FRACTION_WORDS.isdisjoint(vocabulary) or (
            "/" in seen and _DIGIT_FRACTION.search(seen) is not None
        )
        parts = any(m in seen for m in _PARTS_MARKS) and _PARTS.search(seen) is not None
        asks_work = not _WORK_WORDS.isdisjoint(vocabulary) or any(s in lower for s in _STEP_BY_STEP)
        return cls(
            words=round(len(words) * scale),
            numbers=len(_NUMBER.findall(seen)),
            chars=len(text),
            fractions=fractions,
            parts=parts,
            asks_work=asks_work,
            operators=len(_OPERATOR.findall(seen)),
            long_words=sum(1 for w in words if len(w) >= 9) / max(1, len(words)),
            questions=seen.count("?"),
        )

    def vector(self) -> dict[str, float]:
        """The named features, in the units the scorers' weights expect."""
        return {
            "size": math.log1p(self.words),
            "fractions": float(self.fractions),
            "parts": float(self.parts),
            "numbers": math.log1p(self.numbers),
            "asks_work": float(self.asks_work),
            "chars": math.log1p(self.chars),
            "operators": math.log1p(self.operators),
            "long_words": self.long_words,
            "questions": math.log1p(self.questions),
        }
