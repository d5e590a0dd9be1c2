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
from collections import Counter

from orchestrator.routing.complexity import window

_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_DEC = re.compile(r"\d\.\d")
_DIGIT_FRACTION = re.compile(r"\d\s*/\s*\d")
_NEG_CONTRACTION = re.compile(r"\b(?:doesn't|didn't|won't)\b")
_A_PIECE = re.compile(r"\ba piece\b")
_RUN = re.compile(r"\w+")
_WORD = re.compile(r"[A-Za-z']+")
_CAPS = re.compile(r"\b[A-Z][a-z]+\b")
_SENTENCE = re.compile(r"[.!?]\s")


def _plural(*words: str) -> tuple[str, ...]:
    return tuple(w + s for w in words for s in ("", "s"))


# Each word counts for the features it names, when it stands alone (a whole \w+ run of
# the lower-cased text, as ``\bword\b`` would find it).
_WORDS: dict[str, tuple[str, ...]] = {
    "numwords": (
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        "hundred", "thousand", "million", "dozen", "twice", "double", "triple", "half", "halves",
        "third", "thirds", "quarter", "quarters", "fourth", "fifth", "tenth",
    ),
    "frac": _plural("half", "third", "quarter", "fourth", "fifth", "fraction"),
    "money": _plural("dollar", "cent"),
    "time": _plural("second", "minute", "hour", "day", "week", "month", "year", "decade"),
    "units": _plural(
        "inch", "inches", "feet", "foot", "yard", "mile", "meter", "metre", "km", "kilometer",
        "centimeter", "cm", "gallon", "liter", "litre", "pound", "ounce", "kg", "gram", "cup",
        "mph",
    ),
    "comp": ("more", "less", "fewer", "times", "than", "twice", "double", "triple"),
    "rate": ("each", "per", "every", "apiece"),
    "cond": ("if", "when", "until", "unless", "instead", "but", "however", "except"),
    "neg": ("not", "no", "none"),
    "agg": ("average", "mean", "total", "altogether", "combined", "together", "sum"),
}  # fmt: skip
_FEATURES_OF: dict[str, tuple[str, ...]] = {}
for _feature, _words in _WORDS.items():
    for _word in dict.fromkeys(_words):
        _FEATURES_OF[_word] = (*_FEATURES_OF.get(_word, ()), _feature)
# Words that count when a run starts with them (``\bprefix\w*``).
_CHANGE_PREFIXES = (
    "increase", "decrease", "discount", "profit", "loss", "tax", "tip", "interest", "raise",
    "off", "remaining", "remain", "left", "rest", "after", "then",
)  # fmt: skip
_PERCENT = "percent"

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
    """The raw counts, by name (see the module docstring).

    One pass over the words: each whole word (a ``\\w+`` run of the lower-cased text)
    is looked up once, so a 4,000-character prompt costs well under a millisecond.
    """
    seen = window(text)
    lower = seen.lower()
    sentences = [s for s in _SENTENCE.split(seen) if s.strip()]
    last = sentences[-1] if sentences else seen
    numbers = _NUM.findall(seen)
    found = dict.fromkeys(_WORDS, 0)
    found["change"] = found["pct"] = 0
    times = set()
    for run, n in Counter(_RUN.findall(lower)).items():
        for feature in _FEATURES_OF.get(run, ()):
            found[feature] += n
            if feature == "time":
                times.add(run)
        if run.startswith(_CHANGE_PREFIXES):
            found["change"] += n
        if run.startswith(_PERCENT):
            found["pct"] += n
    found["pct"] += lower.count("%")
    found["money"] += lower.count("$")
    if "/" in lower:
        found["frac"] += len(_DIGIT_FRACTION.findall(lower))
    if "n't" in lower:
        found["neg"] += len(_NEG_CONTRACTION.findall(lower))
    if "a piece" in lower:
        found["rate"] += len(_A_PIECE.findall(lower))
    found.update(
        words=len(_WORD.findall(seen)),
        numbers=len(numbers),
        dec=len(_DEC.findall(seen)),
        distinct_time=len(times),
        sents=len(sentences),
        commas=seen.count(","),
        caps=len(set(_CAPS.findall(seen))),
        qmarks=seen.count("?"),
        lastlen=len(_WORD.findall(last)),
        bignum=sum(1 for n in numbers if len(n) > 2 and _value(n) >= 100),  # "99", "9." < 100
        maxdigits=max((len(n) - n.count(",") - n.count(".") for n in numbers), default=0),
    )
    found["quant"] = found["numbers"] + found["numwords"]
    return {name: found[name] for name in NAMES}


def vector(found: dict[str, int]) -> list[float]:
    """``log(1 + count)`` of each count, in ``NAMES`` order."""
    return [math.log1p(found[name]) for name in NAMES]
