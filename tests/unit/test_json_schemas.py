"""Tenants' JSON Schemas: bounded, local, acyclic and valid, checked without recursion."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import exceptions, validators
from referencing.exceptions import Unresolvable

from orchestrator.json_schema_meta import first_error
from orchestrator.json_schemas import MAX_DEPTH, MAX_SUBSCHEMAS, SchemaRefused, check_schema
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
        ({"pattern": "("}, "not a valid JSON Schema"),
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
