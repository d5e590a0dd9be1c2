"""The references and cycles of a tenant's JSON Schema, found without recursion.

``SchemaGraph(schema)`` walks every subschema (anything under a keyword that holds
schemas, and anything a local reference names), refusing a reference that is not
local (``$ref``, ``$dynamicRef``, ``$recursiveRef`` not starting with ``#``), names
nothing, or an inner ``$id`` that would move the base references resolve against.
``check_cycles`` then refuses a loop of keywords that apply to the same value
(``{"$ref": "#"}``); a loop through ``properties`` or ``items`` is a recursive
schema, and fine. See ``orchestrator.core.json_schemas``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
ANCHOR_KEYWORDS = ("$anchor", "$dynamicAnchor")
# keywords whose value is one schema / a list of schemas / an object of schemas
ONE = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
)
MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
NAMED = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
# keywords that apply their schemas to the very value being validated (no progress)
IN_PLACE_ONE = ("not", "if", "then", "else")
IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
IN_PLACE_NAMED = ("dependentSchemas", "dependencies")

Path = tuple[str | int, ...]


class SchemaRefused(ValueError):
    """A schema Switchyard will not accept; the message says where inside it, and why."""

    def __init__(self, where: Path, message: str) -> None:
        self.where = where
        super().__init__(f"{message} (at {pointer(where)})" if where else message)


def pointer(path: Path) -> str:
    """A path inside a schema as a JSON pointer fragment (``#/properties/a``)."""
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in path)
    return "#/" + "/".join(parts) if path else "#"


class SchemaGraph:
    """Every subschema of a schema by path, with its local anchors; references checked.

    A subschema is anything under a keyword that holds schemas, or anything a local
    reference names (jsonschema follows a pointer wherever it leads).
    """

    def __init__(self, root: dict[str, Any], *, id_keyword: str) -> None:
        self.root = root
        self.id_keyword = id_keyword
        self.schemas: dict[Path, Any] = {}
        self.anchors: dict[str, Path] = {}
        self._unchecked: list[Path] = []
        self._add(root, ())
        while self._unchecked:  # a reference may name a schema no keyword holds: add it
            path = self._unchecked.pop()
            for keyword, ref in self.references(self.schemas[path], path):
                self.resolve(ref, (*path, keyword))

    def _add(self, top: Any, top_path: Path) -> None:
        stack: list[tuple[Any, Path]] = [(top, top_path)]
        while stack:
            schema, path = stack.pop()
            if path in self.schemas:
                continue
            self.schemas[path] = schema
            self._unchecked.append(path)
            if isinstance(schema, dict):
                self._note_ids(schema, path)
                stack.extend(_subschemas(schema, path))

    def _note_ids(self, schema: dict[str, Any], path: Path) -> None:
        ident = schema.get(self.id_keyword)
        if ident is not None and path:
            if not isinstance(ident, str) or not ident.startswith("#"):
                raise SchemaRefused(
                    (*path, self.id_keyword),
                    f"{self.id_keyword} is allowed only at the root, or as a '#name' anchor",
                )
            self.anchors[ident[1:]] = path
        for keyword in ANCHOR_KEYWORDS:
            name = schema.get(keyword)
            if isinstance(name, str):
                self.anchors[name] = path

    @staticmethod
    def references(schema: Any, path: Path) -> Iterator[tuple[str, str]]:
        """(keyword, reference) for every reference keyword of one subschema."""
        if not isinstance(schema, dict):
            return
        for keyword in REF_KEYWORDS:
            if keyword not in schema:
                continue
            ref = schema[keyword]
            if not isinstance(ref, str):
                raise SchemaRefused((*path, keyword), f"{keyword} must be a string")
            if not ref.startswith("#"):
                raise SchemaRefused(
                    (*path, keyword),
                    f"{keyword} {ref[:200]!r} is not local: only references inside the "
                    "schema ('#...') are allowed, nothing is fetched",
                )
            yield keyword, ref

    def resolve(self, ref: str, where: Path) -> Path:
        """The path of the subschema a local reference names (SchemaRefused if none)."""
        fragment = unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            if fragment in self.anchors:
                return self.anchors[fragment]
            raise SchemaRefused(where, f"{ref[:200]!r} names no anchor of the schema")
        path: list[str | int] = []
        node: Any = self.root
        for raw in fragment.split("/")[1:] if fragment else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            step: str | int = part
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                step = int(part)
                node = node[step]
            else:
                raise SchemaRefused(where, f"{ref[:200]!r} names nothing in the schema")
            path.append(step)
        found = tuple(path)
        if found not in self.schemas:
            if not isinstance(node, dict | bool):
                raise SchemaRefused(where, f"{ref[:200]!r} does not name a schema")
            self._add(node, found)
        return found

    def in_place(self, path: Path) -> Iterator[Path]:
        """Subschemas applied to the same value as the one at ``path``."""
        schema = self.schemas[path]
        if not isinstance(schema, dict):
            return
        for keyword, ref in self.references(schema, path):
            yield self.resolve(ref, (*path, keyword))
        inside: list[Path] = [(*path, keyword) for keyword in IN_PLACE_ONE]
        for keyword in IN_PLACE_MANY:
            if isinstance(schema.get(keyword), list):
                inside += [(*path, keyword, i) for i in range(len(schema[keyword]))]
        for keyword in IN_PLACE_NAMED:
            if isinstance(schema.get(keyword), dict):
                inside += [(*path, keyword, name) for name in schema[keyword]]
        yield from (p for p in inside if p in self.schemas)


def _subschemas(schema: dict[str, Any], path: Path) -> Iterator[tuple[Any, Path]]:
    """The schemas directly inside one schema, by the keywords that hold schemas."""
    for keyword in ONE:
        if isinstance(schema.get(keyword), dict | bool):
            yield schema[keyword], (*path, keyword)
    items = schema.get("items")
    if isinstance(items, dict | bool):
        yield items, (*path, "items")
    elif isinstance(items, list):
        yield from ((s, (*path, "items", i)) for i, s in enumerate(items))
    for keyword in MANY:
        if isinstance(schema.get(keyword), list):
            yield from ((s, (*path, keyword, i)) for i, s in enumerate(schema[keyword]))
    for keyword in (*NAMED, "dependencies"):
        if isinstance(schema.get(keyword), dict):
            for name, sub in schema[keyword].items():
                if isinstance(sub, dict | bool):
                    yield sub, (*path, keyword, name)


def check_cycles(nodes: SchemaGraph) -> None:
    """Refuse a loop of same-value keywords (iterative depth-first search, three colours)."""
    done: set[Path] = set()
    for start in nodes.schemas:
        if start in done:
            continue
        on_path: set[Path] = {start}
        stack: list[tuple[Path, Iterator[Path]]] = [(start, nodes.in_place(start))]
        while stack:
            path, edges = stack[-1]
            step = next(edges, None)
            if step is None:
                stack.pop()
                on_path.discard(path)
                done.add(path)
            elif step in on_path:
                raise SchemaRefused(
                    path,
                    f"the schema refers to itself ({pointer(step)}) without validating "
                    "a smaller part of the value: it would never finish",
                )
            elif step not in done:
                on_path.add(step)
                stack.append((step, nodes.in_place(step)))
