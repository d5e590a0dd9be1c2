"""Tenants' JSON Schemas: bounded, local, acyclic and valid, checked without recursion."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import exceptions, validators
from referencing.exceptions import Unresolvable

from orchestrator.core.json_schema_meta import first_error
from orchestrator.core.json_schemas import MAX_DEPTH, MAX_SUBSCHEMAS, SchemaRefused, check_schema
from workers.checks import first_schema_error

TREE = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        TREE,
        {"$defs": {"n": {"$anchor": "node", "type": "string"}}, "$ref": "#node"},
        {"$id": "https://example.com/s.json", "$defs": {"a": {}}, "$ref": "#/$defs/a"},
        {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {}}},
        {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"id": {}}},
        {"const": {"$ref": "http://127.0.0.1:9/data-not-a-ref.json"}},
        {"properties": {"$ref": {"type": "string"}}},
        {"properties": {"code": {"pattern": "^[A-Z]{3}-\\d+$"}}, "patternProperties": {"^x-": {}}},
        {"pattern": "^\\p{L}+$", "propertyNames": {"pattern": "^\\u0061"}},
    ],
)
def test_ordinary_and_recursive_schemas_are_accepted(schema: dict[str, Any]) -> None:
    check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"$ref": "http://127.0.0.1:9/x.json"}, "not local"),
        ({"properties": {"a": {"items": {"$ref": "file:///etc/passwd"}}}}, "not local"),
        ({"$dynamicRef": "https://example.com/meta#meta"}, "not local"),
        ({"$ref": "#"}, "refers to itself"),
        ({"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}, "itself"),
        (
            {
                "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#"}}},
                "$ref": "#/$defs/a",
            },
            "itself",
        ),
        ({"if": {"$ref": "#"}}, "itself"),
        ({"$ref": "#/definitions/missing"}, "names nothing"),
        ({"$ref": "#nope"}, "no anchor"),
        ({"properties": {"a": {"$id": "http://127.0.0.1:9/y.json"}}}, "only at the root"),
        ({"$schema": "http://127.0.0.1:9/meta.json"}, "unknown $schema"),
        ({"type": 12}, "not a valid JSON Schema"),
        ({"pattern": "("}, "missing \\)"),
        ({"properties": {"a": {"pattern": "^(?=.*x)"}}}, "lookaround"),
        ({"patternProperties": {"(a)\\1": {}}}, "backreferences"),
        ({"propertyNames": {"pattern": "(?<!x)y"}}, "RE2 cannot run it"),
        ({"pattern": "a" * 1001}, "longer than 1000"),
        ({"patternProperties": {f"^p{i:04}" + "x" * 990: {} for i in range(21)}}, "more than"),
        ({"properties": {f"p{i}": {} for i in range(MAX_SUBSCHEMAS + 1)}}, "more than"),
    ],
)
def test_fetching_looping_malformed_and_huge_schemas_are_refused(
    schema: dict[str, Any], why: str
) -> None:
    with pytest.raises(SchemaRefused, match=why.replace("$", r"\$")):
        check_schema(schema)


def test_a_5000_deep_schema_is_refused_without_recursion() -> None:
    # Given a schema nested 5,000 deep (far past Python's recursion limit)
    schema: dict[str, Any] = {}
    node = schema
    for _ in range(5000):
        node["items"] = {}
        node = node["items"]
    # When it is checked; Then it is refused for its depth, not with a RecursionError
    with pytest.raises(SchemaRefused, match=f"deeper than {MAX_DEPTH}"):
        check_schema(schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}},
        {"type": 12},
        {"properties": {"a": {"minimum": "x"}}},
        {"$defs": {"a": {"required": [1]}}},
        {"items": [{}]},
        {"prefixItems": [{"type": "nope"}]},
        {"unevaluatedProperties": {"enum": []}, "dependentRequired": {"a": [1]}},
        {"$schema": "https://json-schema.org/draft/2019-09/schema", "items": [{}, {"type": 1}]},
        {"$schema": "https://json-schema.org/draft/2019-09/schema", "$recursiveAnchor": True},
        {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "x"}]},
        {"contentSchema": {"type": []}, "deprecated": "yes"},
    ],
)
def test_the_flattened_metaschema_judges_as_jsonschema_does(schema: dict[str, Any]) -> None:
    # Given jsonschema's own verdict on a schema
    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
        official = True
    except exceptions.SchemaError:
        official = False
    # Then the flattened metaschema gives the same one
    assert (first_error(validator_class, schema) is None) is official


@pytest.fixture
def listener() -> Iterator[list[str]]:
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "string"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asked.append(f"http://127.0.0.1:{server.server_port}/x.json")
    yield asked
    server.shutdown()
    server.server_close()


def test_the_workers_validator_resolves_nothing_remote(listener: list[str]) -> None:
    # Given a schema stored before admission refused remote refs, naming a local listener
    url = listener.pop()
    schema = {"type": "object", "properties": {"a": {"$ref": url}}}
    # When a worker validates an answer against it
    with pytest.raises(Unresolvable):
        first_schema_error(schema, {"a": 5})
    # Then the reference is unresolvable, and the listener was never asked
    assert listener == []


CATASTROPHIC = [
    ({"type": "string", "pattern": "^(a+)+$"}, "a" * 40 + "!"),
    (
        {"type": "object", "patternProperties": {"^(x|x)*y$": {}}, "additionalProperties": False},
        {"x" * 40: 1},
    ),
    (
        {"type": "object", "patternProperties": {"^(x|x)*y$": {}}, "unevaluatedProperties": False},
        {"x" * 40: 1},
    ),
    ({"type": "object", "propertyNames": {"pattern": "^(a|aa)+$"}}, {"a" * 40 + "!": 1}),
]
CHILD = """
import json, sys, time
from workers.checks import first_schema_error
took = []
for schema, value in json.loads(sys.stdin.read()):
    start = time.perf_counter()
    error = first_schema_error(schema, value)
    took.append((time.perf_counter() - start, error))
print(json.dumps(took))
"""


def test_catastrophic_patterns_are_refused_in_linear_time() -> None:
    # Given patterns Python's backtracking re takes minutes on, each against an answer
    # of 40 characters that does not match (run in a child: a hung re holds the GIL)
    cases = json.dumps(CATASTROPHIC)
    # When the workers' validator checks each answer
    child = subprocess.run(
        [sys.executable, "-c", CHILD], input=cases, capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 0, child.stderr
    # Then each answer is rejected, within a second
    for seconds, error in json.loads(child.stdout):
        assert seconds < 1.0 and error is not None, (seconds, error)


@pytest.mark.parametrize(
    ("value", "valid"),
    [("ABC-12", True), ("ABC-", False), ("abc-12", False), ("ABC-12\n", False)],
)
def test_ordinary_patterns_validate_and_reject(value: str, valid: bool) -> None:
    # Given an ordinary pattern, on a property and as a pattern property
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"}},
        "patternProperties": {"^n_": {"type": "integer"}},
        "additionalProperties": False,
    }
    # When an answer is validated; Then it passes or fails on the pattern (``$`` is the
    # end of the text, as in ECMA-262: Python's re also let "ABC-12\n" through)
    assert (first_schema_error(schema, {"code": value, "n_1": 2}) is None) is valid
    assert first_schema_error(schema, {"code": "ABC-1", "n_1": "x"}) is not None
    assert "does not match any of the regexes" in str(first_schema_error(schema, {"z": 1}))
