"""Tenants' JSON Schemas: bounded, self-contained and acyclic, checked once at admission.

A schema arrives as a ``response_format``'s ``json_schema.schema`` (``POST /v1/jobs``,
native batches, ``POST /v1/chat/completions``, OpenAI batch files) or as a pipeline
step's ``json_schema``; the models holding them call ``check_schema``, so every way
in is covered and a refusal names its field (``response_format.json_schema.schema``,
``steps.1.json_schema``). In order, each step's work bounded by the one before:

    size, depth   at most MAX_NODES values and MAX_DEPTH nested objects or arrays,
                  counted without recursion (a 5,000-deep schema is refused, not a
                  RecursionError), and MAX_SUBSCHEMAS schemas in all
    dialect       ``$schema``, if given, names a draft jsonschema ships (04 to 2020-12)
    references    ``$ref``, ``$dynamicRef`` and ``$recursiveRef`` are local (``#`` or
                  ``#/json/pointer`` or ``#anchor``) and name a schema inside this one;
                  only the root may carry a ``$id`` (an inner one would move the base
                  that local references resolve against)
    cycles        no chain of keywords that apply to the same value (``$ref``, ``allOf``,
                  ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else``,
                  ``dependentSchemas``) comes back to where it started: ``{"$ref": "#"}``
                  would recurse forever; a reference under ``properties`` or ``items``
                  is fine (it validates a smaller part of the answer each time)
    patterns      every ``pattern`` and ``patternProperties`` regex compiles with RE2,
                  the linear-time engine workers match with, in at most 1,000
                  characters (no lookaround, no backreferences: ``json_schema_regex``)
    metaschema    the schema is valid against its draft's metaschema (``{"type": 12}``
                  is not)

``NO_FETCH`` is the registry workers validate answers with: it retrieves nothing,
so even a schema stored before these checks existed can never make a worker open
a URL (jsonschema's default registry fetches remote ``$ref``s, redirects and
``file://`` included).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from orchestrator.core.json_schema_refs import SchemaGraph, SchemaRefused, check_cycles
from orchestrator.core.json_schema_regex import check_patterns

MAX_NODES = 10_000
"""Values in one schema (objects, arrays and scalars; keys not counted)."""
MAX_DEPTH = 64
"""Objects and arrays nested in one another (about 30 levels of ``properties``)."""
MAX_SUBSCHEMAS = 1_000
"""Schemas inside one schema: each is checked against the metaschema, so the limit
bounds that check's time; it runs once per schema (``_Accepted``)."""

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_SUBSCHEMAS", "NO_FETCH", "SchemaRefused", "check_schema"]


def check_schema(schema: Any) -> None:
    """Refuse (``SchemaRefused``) a schema that is too big, fetches, loops or is malformed."""
    if not isinstance(schema, dict):
        raise SchemaRefused((), "a JSON Schema here must be an object")
    _check_bounds(schema)
    digest = hashlib.sha256(
        json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    if _ACCEPTED.seen(digest):
        return
    validator_class = _dialect(schema)
    draft4 = validator_class.__name__ == "Draft4Validator"
    graph = SchemaGraph(schema, id_keyword="id" if draft4 else "$id")
    if len(graph.schemas) > MAX_SUBSCHEMAS:
        raise SchemaRefused((), f"the schema holds more than {MAX_SUBSCHEMAS} schemas")
    check_cycles(graph)
    check_patterns(graph.schemas)
    _check_metaschema(validator_class, schema)
    _ACCEPTED.add(digest)


def _check_bounds(schema: dict[str, Any]) -> None:
    """At most MAX_NODES values, MAX_DEPTH deep: counted without recursion, stopping early."""
    count = 0
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise SchemaRefused((), f"the schema has more than {MAX_NODES} values")
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise SchemaRefused((), f"the schema nests deeper than {MAX_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


class _Accepted:
    """Digests of the schemas accepted last: the API, the dispatcher and every delivery of
    a job validate its request again, and a batch repeats one schema on every line."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._digests: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def seen(self, digest: bytes) -> bool:
        with self._lock:
            return digest in self._digests

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            while len(self._digests) > self.size:
                del self._digests[next(iter(self._digests))]


_ACCEPTED = _Accepted(4096)


def _dialect(schema: dict[str, Any]) -> Any:
    """The validator class of the schema's ``$schema`` (2020-12 without one)."""
    from jsonschema import validators

    if "$schema" not in schema:
        return validators.Draft202012Validator
    uri = schema["$schema"]
    if not isinstance(uri, str):
        raise SchemaRefused(("$schema",), "$schema must be a string")
    found = validators.validator_for(schema, default=None)  # type: ignore[arg-type]
    if found is None or found is validators.Draft3Validator:
        message = f"unknown $schema {uri[:100]!r}: use a draft from 04 to 2020-12"
        raise SchemaRefused(("$schema",), message)
    return found


def _check_metaschema(validator_class: Any, schema: dict[str, Any]) -> None:
    from orchestrator.core.json_schema_meta import first_error

    found = first_error(validator_class, schema)
    if found is not None:
        where, message = found
        raise SchemaRefused(where, f"not a valid JSON Schema: {message[:300]}")


def _refuse_retrieval(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


NO_FETCH: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]
"""A registry that retrieves nothing: a reference outside the schema is unresolvable."""
