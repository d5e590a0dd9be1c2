"""The bounded JSON decoder: depth, number and size limits, and the field each refusal names."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from orchestrator.admission import json_body
from orchestrator.admission.json_body import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_VALUES,
    InvalidJSON,
    loads,
)
from orchestrator.core.errors import TooLarge, ValidationFailed


def nested_schema(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "object", "properties": {}}
    node = root
    for _ in range(levels):
        child: dict[str, Any] = {"type": "object", "properties": {}}
        node["properties"]["a"] = child
        node = child
    return root


def refusal(data: bytes | str, field: str = "body") -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        loads(data, field=field)
    return caught.value


@pytest.mark.parametrize(
    "document",
    [
        {"prompt": "hi", "max_tokens": 5, "temperature": 0.5, "stop": ["a"], "x": None},
        {"text": 'brackets [[[{{{ and quotes \\" and "escapes" \\\\ in strings ]]]'},
        json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH),
        {"int": -(10 ** (MAX_INT_DIGITS - 1)), "float": 1.5e308, "tiny": 1e-320},
        {"keys": {"NaN": "Infinity", "1e999": [1, 2, 3]}},
        ["line", 1, 2.5, True, False, None, {}, []],
    ],
)
def test_documents_within_the_bounds_parse_as_json_does(document: Any) -> None:
    # Given JSON within every bound; When it is decoded; Then it is what json.loads gives
    text = json.dumps(document)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_nesting_past_the_limit_is_refused_naming_where() -> None:
    # Given a tool whose parameters nest 400 levels (today a RecursionError: a 500)
    tool = {"type": "function", "function": {"name": "f", "parameters": nested_schema(400)}}
    body = json.dumps({"prompt": "hi", "tools": [tool]})
    # When decoded; Then a 422 names the tool's parameters (the path is cut short)
    refused = refusal(body)
    assert refused.field.startswith("tools.0.function.parameters.properties.a")
    assert f"deeper than {MAX_DEPTH}" in refused.message
    # And an array 5,000 deep, or one level past the limit, is refused too
    assert refusal("[" * 5000 + "]" * 5000).field.startswith("[0].0")
    assert refusal("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).message.startswith("nested")
    # And depth is depth however the brackets are spread: [[], [[], [[], ...]]]
    spread = "[" + "[[]," * MAX_DEPTH + "0" + "]" * MAX_DEPTH + "]"
    assert refusal(spread).field.startswith("[0].1.1.1")


@pytest.mark.parametrize(
    ("text", "field", "why"),
    [
        ('{"max_tokens": ' + "9" * 5000 + "}", "line 1.max_tokens", "more than 100 digits"),
        ('{"max_tokens": -' + "9" * 101 + "}", "line 1.max_tokens", "more than 100 digits"),
        ('{"daily_usd": Infinity}', "line 1.daily_usd", "Infinity is not a JSON number"),
        ('{"a": [1, {"b": -Infinity}]}', "line 1.a.1.b", "-Infinity is not"),
        ('[{"a": 1}, {"b": NaN}]', "line 1.1.b", "NaN is not a JSON number"),
        ('{"a": 1e999}', "line 1.a", "too large for a float"),
        ('{"a": 1.5, "b": 10e308}', "line 1.b", "too large for a float"),
    ],
)
def test_numbers_past_the_bounds_are_refused_naming_the_field(
    text: str, field: str, why: str
) -> None:
    # When a document with such a number is decoded (today: a reset, or a 500 later)
    refused = refusal(text, field="line 1")
    # Then the refusal names where the number is, and why
    assert (refused.field, type(refused)) == (field, ValidationFailed)
    assert why in refused.message


def test_a_top_level_array_names_its_items_as_native_batches_do() -> None:
    assert refusal('[{"a": 1}, {"b": NaN}]').field == "[1].b"
    assert json_body.field_name("body", ()) == "body"
    assert json_body.field_name("line 3", ()) == "line 3"


def test_text_that_is_not_json_is_invalid_json() -> None:
    for text in ('{"a": 1', b"\xff\xfe", "][", "[1, NaNx]", '{"a": "unterminated [[['):
        refused = refusal(text)
        assert isinstance(refused, InvalidJSON) and refused.field == "body", text


def test_too_many_values_is_413_before_parsing() -> None:
    # Given an array one value past the limit (its bracket and commas count)
    text = "[" + ",".join(["0"] * (MAX_VALUES + 1)) + "]"
    # When decoded; Then TooLarge (a 413), found by counting, not by parsing
    started = time.perf_counter()
    with pytest.raises(TooLarge):
        loads(text)
    assert time.perf_counter() - started < 2.0
    # And commas inside strings are text, not values
    assert loads(json.dumps({"csv": "," * (MAX_VALUES + 10)}))["csv"].count(",") > MAX_VALUES
