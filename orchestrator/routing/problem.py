"""What a maths word problem asks to keep track of: counts a person can check by reading it.

The ``blend`` and ``tiered`` scorers read these. They were written before any of
them was measured, as guesses at what makes a grade-school word problem take more
steps (more quantities, fractions and percentages, units to convert, comparisons,
conditions, totals over several people); which ones matter, and in which direction,
is left to a logistic regression fitted on GSM8K's development half (``train/blend.py``).

    words        words                          numbers      numbers in digits
    numwords     numbers in words ("twice")     pct          percentages
    frac         fractions ("1/3", "half")      dec          decimals
    money        "$", dollars, cents            time         time units
    units        length, volume, weight units   distinct_time  different time units
    comp         more, less, times, than        rate         each, per, every
    change       discount, tax, left, then...   cond         if, when, but, unless...
    neg          not, no, none                  agg          total, average, together
    sents        sentences                      commas       commas
    caps         distinct capitalised words (people, places)
    qmarks       question marks                 lastlen      words in the last sentence
    bignum       numbers of 100 or more         maxdigits    digits of the longest number
    quant        numbers in digits and in words

Each is used as ``log(1 + count)``. Only the ``complexity`` window of the text is
read (head and tail), so cost is bounded whatever the prompt's length. Pure Python.
"""

from __future__ import annotations

import math
import re

from orchestrator.routing.complexity import window

_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NUM_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundred|thousand|million|dozen|twice|double|triple|half|halves|third"
    r"|thirds|quarter|quarters|fourth|fifth|tenth)\b"
)
_PCT = re.compile(r"%|\bpercent")
_FRAC = re.compile(r"\d\s*/\s*\d|\b(?:half|third|quarter|fourth|fifth|fraction)s?\b")
_DEC = re.compile(r"\d\.\d")
_MONEY = re.compile(r"\$|\bdollars?\b|\bcents?\b")
_TIME = re.compile(r"\b(?:second|minute|hour|day|week|month|year|decade)s?\b")
_UNITS = re.compile(
    r"\b(?:inch|inches|feet|foot|yard|mile|meter|metre|km|kilometer|centimeter|cm|gallon"
    r"|liter|litre|pound|ounce|kg|gram|cup|mph)s?\b"
)
_COMP = re.compile(r"\b(?:more|less|fewer|times|than|twice|double|triple)\b")
_RATE = re.compile(r"\b(?:each|per|every|a piece|apiece)\b")
_CHANGE = re.compile(
    r"\b(?:increase|decrease|discount|profit|loss|tax|tip|interest|raise|off|remaining|remain"
    r"|left|rest|after|then)\w*"
)
_COND = re.compile(r"\b(?:if|when|until|unless|instead|but|however|except)\b")
_NEG = re.compile(r"\b(?:not|no|doesn't|didn't|won't|none)\b")
_AGG = re.compile(r"\b(?:average|mean|total|altogether|combined|together|sum)\b")
_WORD = re.compile(r"[A-Za-z']+")
_CAPS = re.compile(r"\b[A-Z][a-z]+\b")
_SENTENCE = re.compile(r"[.!?]\s")

NAMES: tuple[str, ...] = (
    "words", "numbers", "numwords", "pct", "frac", "dec", "money", "time", "units",
    "distinct_time", "comp", "rate", "change", "cond", "neg", "agg", "sents", "commas",
    "caps", "qmarks", "lastlen", "bignum", "maxdigits", "quant",
)  # fmt: skip


def _value(number: str) -> float:
    try:
        return float(number.replace(",", ""))
    except ValueError:  # "1,,." cannot match the pattern, but never fail on a prompt
        return 0.0


def counts(text: str) -> dict[str, int]:
    """The raw counts, by name (see the module docstring)."""
    seen = window(text)
    lower = seen.lower()
    sentences = [s for s in _SENTENCE.split(seen) if s.strip()]
    last = sentences[-1] if sentences else seen
    numbers = _NUM.findall(seen)
    times = _TIME.findall(lower)
    found = {
        "words": len(_WORD.findall(seen)),
        "numbers": len(numbers),
        "numwords": len(_NUM_WORDS.findall(lower)),
        "pct": len(_PCT.findall(lower)),
        "frac": len(_FRAC.findall(lower)),
        "dec": len(_DEC.findall(seen)),
        "money": len(_MONEY.findall(lower)),
        "time": len(times),
        "units": len(_UNITS.findall(lower)),
        "distinct_time": len(set(times)),
        "comp": len(_COMP.findall(lower)),
        "rate": len(_RATE.findall(lower)),
        "change": len(_CHANGE.findall(lower)),
        "cond": len(_COND.findall(lower)),
        "neg": len(_NEG.findall(lower)),
        "agg": len(_AGG.findall(lower)),
        "sents": len(sentences),
        "commas": seen.count(","),
        "caps": len(set(_CAPS.findall(seen))),
        "qmarks": seen.count("?"),
        "lastlen": len(_WORD.findall(last)),
        "bignum": sum(1 for n in numbers if _value(n) >= 100),
        "maxdigits": max((len(n.replace(",", "").replace(".", "")) for n in numbers), default=0),
    }
    found["quant"] = found["numbers"] + found["numwords"]
    return found


def vector(found: dict[str, int]) -> list[float]:
    """``log(1 + count)`` of each count, in ``NAMES`` order."""
    return [math.log1p(found[name]) for name in NAMES]
