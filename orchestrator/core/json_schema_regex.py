"""Tenants' regular expressions, run by RE2 (``google-re2``): linear time, whatever they say.

A schema's ``pattern`` and ``patternProperties`` regexes (``propertyNames`` holds a
schema, so its ``pattern`` is one of these) are tenant input that workers run against
model answers. Python's ``re``, which jsonschema uses, backtracks: ``^(a+)+$``
against 40 ``a`` and a ``!`` holds a worker (and its GIL) for minutes. RE2 matches in
time linear in the text, with no backtracking; in exchange it has no lookaround
(``(?=``, ``(?!``, ``(?<=``, ``(?<!``) and no backreferences (``\\1``), so:

    admission   ``check_patterns`` refuses (``SchemaRefused``, with where) a pattern
                longer than MAX_PATTERN_CHARS or that RE2 cannot compile within
                MAX_MEM bytes: what is accepted is exactly what workers will run
    workers     ``workers.schema_validator`` validates with these compiled patterns

ECMA-262 (the dialect JSON Schema names) is followed where RE2 allows: ``\\d``,
``\\w`` and ``\\b`` are ASCII, ``$`` is the end of the text, ``\\p{L}`` works, and
``\\uXXXX`` is rewritten as RE2's ``\\x{XXXX}``. ``format: regex`` is never asserted
on answers (workers validate without a format checker); on schemas it means "RE2
compiles it" (``orchestrator.core.json_schema_meta``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

import re2  # type: ignore[import-untyped]

from orchestrator.core.json_schema_refs import Path, SchemaRefused

MAX_PATTERN_CHARS = 1_000
MAX_TOTAL_PATTERN_CHARS = 20_000
"""All of one schema's patterns together, so compiling them all stays a bounded cost."""
MAX_MEM = 2 << 20
"""Bytes RE2 may use for one pattern's program and caches (a bigger one is refused)."""
_UNICODE_ESCAPE = re.compile(r"\\(\\|u([0-9A-Fa-f]{4}))")

__all__ = [
    "MAX_PATTERN_CHARS",
    "MAX_TOTAL_PATTERN_CHARS",
    "PatternRefused",
    "check_patterns",
    "compiled",
]


class PatternRefused(ValueError):
    """A pattern RE2 will not run: too long, not RE2 syntax, or too big a program."""


def compiled(pattern: str) -> Any:
    """``pattern`` as a compiled RE2 regex (cached); PatternRefused saying why it cannot be."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternRefused(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    return _compile(pattern)


@functools.lru_cache(maxsize=128)
def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refused pattern on stderr
    options.max_mem = MAX_MEM
    try:
        return re2.compile(_UNICODE_ESCAPE.sub(_escape, pattern), options)
    except re2.error as exc:
        raise PatternRefused(_why(exc)) from None


def _escape(found: re.Match[str]) -> str:
    """``\\\\`` stays an escaped backslash; ``\\uXXXX`` becomes ``\\x{XXXX}``."""
    return found.group(0) if found.group(2) is None else "\\x{" + found.group(2) + "}"


def _why(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    reason = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return (
        f"RE2 cannot run it ({reason[:120]}); patterns run in linear time here, so "
        "lookaround ((?=, (?!, (?<=, (?<!) and backreferences (\\1) are not supported"
    )


def check_patterns(schemas: Mapping[Path, Any]) -> None:
    """Refuse (``SchemaRefused``) any ``pattern``/``patternProperties`` RE2 will not run.

    ``schemas`` is every subschema by path (``json_schema_refs.SchemaGraph.schemas``);
    a non-string pattern is left to the metaschema check.
    """
    found = list(_patterns(schemas))
    if sum(len(pattern) for pattern, _ in found) > MAX_TOTAL_PATTERN_CHARS:
        message = f"the schema's patterns hold more than {MAX_TOTAL_PATTERN_CHARS} characters"
        raise SchemaRefused((), message)
    for pattern, where in found:
        _check(pattern, where)


def _patterns(schemas: Mapping[Path, Any]) -> Iterator[tuple[str, Path]]:
    for path, schema in schemas.items():
        if not isinstance(schema, dict):
            continue
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            yield pattern, (*path, "pattern")
        names = schema.get("patternProperties")
        if isinstance(names, dict):
            yield from ((name, (*path, "patternProperties", name)) for name in names)


def _check(pattern: str, where: Path) -> None:
    try:
        compiled(pattern)
    except PatternRefused as exc:
        raise SchemaRefused(where, f"pattern {pattern[:100]!r} refused: {exc}") from None
