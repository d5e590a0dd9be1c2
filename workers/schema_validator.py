"""jsonschema validators whose tenant regexes run in RE2 (linear time), for model answers.

jsonschema matches ``pattern`` and ``patternProperties`` with Python's backtracking
``re``, also inside ``additionalProperties`` (which keys the patterns cover) and
``unevaluatedProperties`` (which keys were evaluated). A catastrophic pattern such as
``^(a+)+$`` against a 40-character answer then holds a worker for minutes. Each draft's
validator class is extended (``jsonschema.validators.extend``) with those four keywords
reimplemented over ``orchestrator.core.json_schema_regex.compiled``, with jsonschema's
messages; nothing else changes. Admission refused any pattern RE2 cannot run; one
stored before it did raises ``PatternRefused`` here rather than being run by ``re``.
``format`` stays an annotation (no format checker: ``format: regex`` is never run).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import ValidationError
from referencing.jsonschema import lookup_recursive_ref

from orchestrator.core.json_schema_regex import compiled

__all__ = ["safe_validator_class"]


@functools.cache
def safe_validator_class(base: Any) -> Any:
    """``base`` (a draft's validator class) with every tenant regex matched by RE2."""
    overrides: dict[str, Any] = {
        "pattern": pattern,
        "patternProperties": pattern_properties,
        "additionalProperties": additional_properties,
    }
    if "unevaluatedProperties" in base.VALIDATORS:
        legacy = base is validators.Draft201909Validator
        overrides["unevaluatedProperties"] = functools.partial(unevaluated_properties, legacy)
    return validators.extend(base, overrides)  # type: ignore[no-untyped-call]


def _search(regex: str, text: str) -> bool:
    return compiled(regex).search(text) is not None


def pattern(validator: Any, regex: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(regex, instance):
        yield ValidationError(f"{instance!r} does not match {regex!r}")


def pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for regex, subschema in patterns.items():
        for key, value in instance.items():
            if _search(regex, key):
                yield from validator.descend(value, subschema, path=key, schema_path=regex)


def _extras_msg(extras: list[Any]) -> str:
    verb = "was" if len(extras) == 1 else "were"
    return f"{', '.join(repr(extra) for extra in extras)} {verb}"


def additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = {
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    }
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            regexes = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {regexes}")
        else:
            found = _extras_msg(sorted(extras, key=str))
            yield ValidationError(f"Additional properties are not allowed ({found} unexpected)")


def unevaluated_properties(
    legacy: bool, validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(legacy, validator, instance, schema)
    invalid = [
        key
        for key in instance
        if key not in evaluated
        and next(validator.descend(instance[key], unevaluated, path=key, schema_path=key), None)
    ]
    if not invalid:
        return
    if unevaluated is False:
        found = _extras_msg(sorted(invalid, key=str))
        yield ValidationError(f"Unevaluated properties are not allowed ({found} unexpected)")
    else:
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({_extras_msg(invalid)} unevaluated and invalid)"
        )


def _valid(validator: Any, instance: Any, schema: Any) -> bool:
    return next(validator.descend(instance, schema), None) is None


def _evaluated_keys(legacy: bool, validator: Any, instance: Any, schema: Any) -> set[str]:
    """The keys of ``instance`` that ``schema`` evaluates (jsonschema's rules, RE2 regexes)."""
    if not isinstance(schema, dict):
        return set()
    keys = _own_keys(legacy, validator, instance, schema)
    for resolved in _references(legacy, validator, schema):
        target = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
        keys |= _evaluated_keys(legacy, target, instance, resolved.contents)
    for subschema in _applied(validator, instance, schema):
        keys |= _evaluated_keys(legacy, validator, instance, subschema)
    return keys


def _references(legacy: bool, validator: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if schema.get("$ref") is not None:
        yield validator._resolver.lookup(schema["$ref"])
    if legacy and "$recursiveRef" in schema:
        yield lookup_recursive_ref(validator._resolver)
    if not legacy and schema.get("$dynamicRef") is not None:
        yield validator._resolver.lookup(schema["$dynamicRef"])


def _own_keys(legacy: bool, validator: Any, instance: Any, schema: dict[str, Any]) -> set[str]:
    """Keys evaluated by the schema's own property keywords."""
    keys: set[str] = set()
    properties = schema.get("properties")
    if not legacy and isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("properties", "additionalProperties", "unevaluatedProperties"):
        value = schema.get(keyword)
        if value is None or (not legacy and keyword == "properties"):
            continue
        if not legacy:  # 2020-12: the keys whose values the subschema accepts
            keys |= {k for k, v in instance.items() if _valid(validator, v, value)}
        elif value is True:  # 2019-09 as jsonschema has it: true covers every key
            keys |= instance.keys()
        elif isinstance(value, dict):  # ... and an object the keys it names
            keys |= value.keys() & instance.keys()
    for regex in schema.get("patternProperties", {}):
        keys |= {key for key in instance if _search(regex, key)}
    return keys


def _applied(validator: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """Subschemas applied in place whose keys count as evaluated."""
    for name, subschema in schema.get("dependentSchemas", {}).items():
        if name in instance:
            yield subschema
    for keyword in ("allOf", "oneOf", "anyOf"):
        yield from (s for s in schema.get(keyword, []) if _valid(validator, instance, s))
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            yield schema["if"]
            if "then" in schema:
                yield schema["then"]
        elif "else" in schema:
            yield schema["else"]
