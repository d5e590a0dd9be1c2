"""The clues the code and reasoning stages weigh, as data: one row per clue.

Each `Pattern` fires on trigger words or marks (and optionally a regex); the
classes below cover clues that need a little logic (math expressions, call
syntax, question counts, long prompts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from orchestrator.routing.scan import Scan, Signal


@dataclass(frozen=True)
class Pattern:
    """A clue made of trigger ``words``/``marks`` and, optionally, a regex that must match.

    Words are looked up in the scan's word set and marks are substrings; the regex
    runs only if one of them is present. Without a regex, a trigger word is the clue.
    The regex searches the lowered text, or the original one if ``raw``; ``quote``
    puts the matched text in the reason.
    """

    label: str
    weight: float
    regex: re.Pattern[str] | None
    words: tuple[str, ...] = ()
    marks: tuple[str, ...] = ()
    raw: bool = False
    quote: bool = True

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        haystack = scan.text if self.raw else scan.lower
        word = next((w for w in self.words if w in scan.words), None)
        if self.regex is None:
            return None if word is None else (self.weight, f"{self.label} {word!r}")
        if (
            (self.words or self.marks)
            and word is None
            and not any(m in haystack for m in self.marks)
        ):
            return None
        match = self.regex.search(haystack)
        if match is None:
            return None
        if not self.quote:
            return self.weight, self.label
        return self.weight, f"{self.label} {scan.snippet(*match.span())!r}"


def _w(label: str, weight: float, words: str) -> Pattern:
    return Pattern(label, weight, None, tuple(words.split()))


def _p(
    label: str, weight: float, regex: str, words: str = "", marks: str = "", raw: bool = False
) -> Pattern:
    compiled = re.compile(regex, re.MULTILINE)
    return Pattern(label, weight, compiled, tuple(words.split()), tuple(marks.split()), raw)


_TERM = r"(?:\d+(?:\.\d+)?(?:[a-z](?![a-z]))?|\b[xyzn]\b)"
_OP = r"(?:\s*(?:\*\*|[-+*/^%=<>\u00d7\u00f7\u2264\u2265])\s*)"
_MATH_EXPR = re.compile(rf"\(?{_TERM}\)?(?:{_OP}\(?{_TERM}\)?)+")
_MATH_OP = re.compile(r"[+*/^%=<>\u00d7\u00f7\u2264\u2265]")
_VARIABLE = re.compile(r"\d[a-z]|\b[xyzn]\b")
_NOT_MATH = re.compile(r"[\d\s./-]+")  # a date, a range, a phone number, a fraction
_QUANTITY_QUESTION = re.compile(
    r"\bhow (?:much|many|far|long|fast|old)\b|\bwhat(?:'s| is| was| are| were) the (?:total|area|"
    r"perimeter|volume|probability|remainder|sum|product|average|mean|ratio|percentage|value|"
    r"cost|price|speed|distance)\b|\bfind the value\b"
)
_NUMBER = re.compile(
    r"\d+|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|hundred|"
    r"thousand|twice|half|double|triple)\b"
)
_CALL = re.compile(r"\((?<=\w\()[^()\n]*\)")
_CALLEE = re.compile(r"[\w.$]+$")


class MathExpression:
    """Numbers joined by operators; an equation with a variable counts in full.

    Searching starts at each operator (at most 20) and looks 40 characters around
    it, so prose with no operators costs one scan for an operator character.
    """

    label = "math expression"

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        best: tuple[float, str] | None = None
        for op in islice(_MATH_OP.finditer(scan.lower), 20):
            pos = op.start()
            for match in _MATH_EXPR.finditer(scan.lower, max(0, pos - 40), pos + 40):
                if not match.start() <= pos < match.end() or _NOT_MATH.fullmatch(match.group(0)):
                    continue
                equation = "=" in match.group(0) and _VARIABLE.search(match.group(0)) is not None
                if best is None or equation:
                    best = (
                        (1.0 if equation else 0.6),
                        f"{self.label} {scan.snippet(*match.span())!r}",
                    )
                if equation:
                    return best
        return best


class CallSyntax:
    """``name(args)`` with no space before the parenthesis, as code writes calls."""

    label = "call syntax"

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        match = _CALL.search(scan.text)
        if match is None:
            return None
        callee = _CALLEE.search(scan.text, max(0, match.start() - 30), match.start())
        start = callee.start() if callee else match.start()
        return 0.5, f"{self.label} {scan.snippet(start, match.end())!r}"


class QuantityQuestion:
    """'How many ...', 'what is the total ...' over quantities in the prompt: a word problem.

    Two quantities (digits or number words) stated before the question make it a
    self-contained problem, which decides; quantities elsewhere only lean.
    """

    label = "word problem"

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        if not scan.words & {"how", "what", "find"}:
            return None
        match = _QUANTITY_QUESTION.search(scan.lower)
        if match is None:
            return None
        before = sum(1 for _ in islice(_NUMBER.finditer(scan.lower, 0, match.start()), 2))
        numbers = sum(1 for _ in islice(_NUMBER.finditer(scan.lower), 2))
        weight = 1.0 if before >= 2 else 0.7 if numbers >= 2 else 0.4
        return weight, f"{self.label} {scan.snippet(*match.span())!r}"


class QuestionCount:
    """Several questions in one request usually need several reasoning steps."""

    label = "questions"

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        count = scan.text.count("?")
        return (min(0.3 * (count - 1), 0.6), f"{count} questions") if count >= 2 else None


class LongPrompt:
    """Long prompts lean toward reasoning, but never decide it alone."""

    label = "long prompt"

    def weigh(self, scan: Scan) -> tuple[float, str] | None:
        if scan.total_chars < 2_000:
            return None
        weight = 0.4 if scan.total_chars >= 8_000 else 0.2
        return weight, f"{self.label} ({scan.total_chars:,} characters)"


_LANGS = (
    "python javascript typescript java golang rust ruby php kotlin swift bash powershell "
    "haskell scala perl html css react django numpy pandas node c++ c#"
)
_LANG_RE = "|".join(re.escape(w) for w in _LANGS.split())
_NOUNS = r"(?:functions?|snippet|regexp?|unit tests?|algorithm|decorator)"
_MAKE = (
    r"\b(?:write|implement|create|generate|develop|build|code|give me|show me)\s+(?:me\s+)?"
    r"(?:an?\s+|the\s+|some\s+)?(?:[\w+#.-]+\s+){0,2}?"
)
# code only with a purpose: "a class that ...", "a website in HTML"
_UNITS = r"(?:script|program|method|class|website|webpage|app)"

# fmt: off
CODE_SIGNALS: tuple[Signal, ...] = (
    Pattern("code fence found", 1.0, re.compile("```"), marks=("```",), quote=False),
    _p("traceback", 1.0, r"Traceback \(most recent call last\)|\bFile \"[^\"\n]+\", line \d+|"
       r"\b[A-Z]\w*(?:Error|Exception):|panicked at '|Segmentation fault|"
       r"\bat [\w$.]+\([\w$]+\.(?:java|kt|js|ts):\d+",
       marks="Traceback File Error: Exception: panicked Segmentation .java: .kt: .js: .ts:",
       raw=True),
    _p("C include", 1.0, r"#include\s*[<\"]", marks="#include"),
    _p("definition syntax", 1.0, r"\b(?:def|fn|func)\s+\w+\s*\(|"
       r"\bclass\s+[A-Z]\w*\s*(?:\([^)\n]*\))?\s*[:{]|\bfunction\s*\w*\s*\([^()\n]*\)\s*\{|"
       r"\bpublic\s+(?:static\s+)?(?:void|class|int)\b",
       words="def fn func class function public", raw=True),
    _p("import statement", 0.8, r"^[ \t]*(?:import\s+[\w.]+(?:\s+as\s+\w+)?;?|"
       r"from\s+[\w.]+\s+import\s+[\w, ]+|using\s+[\w.]+;|package\s+[\w.]+;|#!/\S+)[ \t]*$",
       words="import using package", marks="#!", raw=True),
    _p("SQL statement", 1.0, r"\bSELECT\s+.{1,200}?\s+FROM\s+\w+|\bINSERT\s+INTO\s|"
       r"\bCREATE\s+TABLE\s", words="select insert create", raw=True),
    _p("SQL statement", 1.0,
       r"\bselect\s+(?:\*|\w+(?:\.\w+)?(?:\s*,\s*\w+(?:\.\w+)?)+)\s+from\s+\w+", words="select"),
    _p("code request", 1.0, rf"{_MAKE}{_NOUNS}\b|{_MAKE}{_UNITS}\s+(?:that|to|which|in)\b|"
       r"\bwrite\s+(?:me\s+)?(?:some\s+|the\s+)?code\b", words="function functions snippet "
       "regex regexp unit algorithm decorator script program method class code website "
       "webpage app"),
    # "a script for my video" is not code, "a python script for scraping" is: weak alone
    _p("script request", 0.6, rf"{_MAKE}{_UNITS}\b", words="script program method class"),
    _p("code request", 1.0, r"\bhow (?:do|can|would|should) (?:i|you|we)\b[^?.\n]{0,80}"
       rf"\b(?:in|with|using) (?:{_LANG_RE})(?!\w)", words=_LANGS),
    _p("debugging request", 1.0, r"\b(?:fix|debug|refactor|optimi[sz]e|review)\s+"
       r"(?:this|my|the|a|following)\s+(?:\w+\s+)?"
       r"(?:bug|code|function|script|query|regex|class|method|program|test|loop)\b|"
       r"\bdebug(?:ging)?\b|\brefactor(?:ing)?\b|\bcompil(?:e|er|ation) error\b|"
       r"\bstack ?trace\b|\bsegfault\b|\bnull pointer\b|\boff-by-one\b|\bsyntax error\b|"
       r"\bunit tests?\b", words="fix debug debugging refactor refactoring optimize optimise "
       "review compile compiler compilation stack stacktrace segfault null off syntax unit"),
    _p("regex", 1.0, r"\bregex(?:es|p)?\b|\bregular expressions?\b",
       words="regex regexes regexp regular"),
    _p("SQL query", 1.0, r"\bsql\s+(?:query|queries|statement|join|schema)\b", words="sql"),
    _w("SQL", 0.4, "sql"),
    _p("statement syntax", 0.6, r"[;{}][ \t]*$", marks="; { }", raw=True),
    CallSyntax(),
    _p("operator", 0.3, r"===|!==|=>|&&|\|\||\+=|::|!=", marks="= & | :", raw=True),
    _w("programming language", 0.4, _LANGS),
    _w("programming term", 0.4, "code function variable compiler bug api algorithm recursion "
       "array runtime syntax loop string integer boolean"),
    _p("inline code", 0.3, r"`[^`\n]+`", marks="`", raw=True),
)

REASONING_SIGNALS: tuple[Signal, ...] = (
    MathExpression(),
    _p("math symbol", 0.6, r"[√∫∑∏π≤≥≠∞]|\b(?:sqrt|log|ln|sin|cos|tan|lim)\s*\(",
       words="sqrt log ln sin cos tan lim", marks="√ ∫ ∑ ∏ π ≤ ≥ ≠ ∞"),
    _w("proof or calculus", 1.0, "prove proof proofs theorem lemma integral integrals derivative "
       "derivatives differential eigenvalue eigenvalues eigenvector eigenvectors"),
    _w("math term", 0.6, "solve equation equations calculate polynomial factorial logarithm "
       "matrix variance deviation"),
    _p("probability", 0.6, r"\b(?:probability|odds|permutations?|expected value|how many ways)\b",
       words="probability odds permutation permutations expected ways"),
    _p("step by step", 0.6, r"\bstep[- ]by[- ]step\b|\bshow (?:your|the|all) (?:work|steps)\b|"
       r"\bwalk me through\b|\bthink (?:carefully|it through)\b", words="step show walk think"),
    _p("explanation", 0.5, r"\bexplain (?:why|how)\b|\bwhy (?:does|do|is|are|did)\b|\bjustify\b|"
       r"\bderive\b", words="explain why justify derive"),
    _p("comparison", 0.5, r"\b(?:compare|comparing|comparison|contrast|versus|trade-?offs?|"
       r"pros and cons)\b", words="compare comparing comparison contrast versus trade tradeoff "
       "tradeoffs pros"),
    _w("analysis", 0.5, "analyze analyse analysis analyzing analysing evaluate critique assess"),
    _p("sequence", 0.4, r"\bfirst\b[^\n]{1,300}?\bthen\b", words="first"),
    _w("puzzle", 0.5, "puzzle riddle paradox dilemma"),
    QuantityQuestion(),
    QuestionCount(),
    LongPrompt(),
)
# fmt: on
