"""Bulk inserts whose rows travel as JSON and are expanded by Postgres.

``insert_many(connection, table, rows)`` sends each chunk of rows as one JSON
document and lets the server turn it into rows (``INSERT ... SELECT ... FROM
json_populate_recordset``). The Python work is one ``json.dumps`` (C) per
chunk instead of adapting every value of every row: an ORM or Core
executemany, or psycopg's ``COPY`` row by row, took 5-10 times the CPU in the
calling process (``switchyard bench cache``, ``switchyard bench dispatch``).
Columns whose default SQLAlchemy makes in Python are filled in first (the
server applies only its own); rows are grouped by the columns they carry, so a
column a row leaves out still gets its server default. Elsewhere (SQLite) it is
a Core executemany. Rows are keyed by column name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import lru_cache, partial
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from orchestrator.store.db import driver_rows, pipelined

CHUNK = 500  # rows per statement (json.dumps holds the interpreter while it runs)


def insert_many(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, chunk: int = CHUNK
) -> None:
    """Insert ``rows`` into ``table`` on ``connection`` (in its transaction)."""
    if connection.dialect.name != "postgresql":
        for group in _groups(table, rows).values():
            connection.execute(table.insert(), group)
        return
    for statement, params in json_inserts(table, rows, chunk=chunk):
        driver_rows(connection, statement, params)


Inserts = Callable[[Sequence[dict[str, Any]]], None]


@contextmanager
def streaming_inserts(connection: Connection, table: Table) -> Iterator[Inserts]:
    """``insert(rows)``, as ``insert_many`` for rows that come a part at a time.

    On Postgres a statement is sent without waiting for the one before
    (``db.pipelined``): the server inserts one part while the caller makes the next.
    Everything is in the connection's transaction; an error surfaces by the end of the
    block at the latest.
    """
    if connection.dialect.name != "postgresql":
        yield partial(insert_many, connection, table)
        return
    with pipelined(connection) as send:

        def insert(rows: Sequence[dict[str, Any]]) -> None:
            for statement, params in json_inserts(table, rows):
                send(statement, params)

        yield insert


def json_inserts(
    table: Table, rows: Sequence[dict[str, Any]], *, chunk: int = CHUNK
) -> list[tuple[str, dict[str, str]]]:
    """The Postgres statements (SQL for psycopg, and parameters) that insert ``rows``."""
    return [
        (_json_insert(table, names), {"rows": dumps(group[start : start + chunk])})
        for names, group in _groups(table, rows).items()
        for start in range(0, len(group), chunk)
    ]


def _groups(
    table: Table, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """The rows with their Python-side defaults, grouped by the columns they carry."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        filled = with_defaults(table, row)
        groups.setdefault(tuple(filled), []).append(filled)
    return groups


def with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the columns it leaves out whose default SQLAlchemy makes in Python."""
    filled = dict(row)
    for name, default in _python_defaults(table):
        if name not in row:
            filled[name] = default.arg(cast(Any, None)) if default.is_callable else default.arg
    return filled


@lru_cache(maxsize=32)
def _python_defaults(table: Table) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (column.name, column.default)
        for column in table.columns
        if isinstance(column.default, CallableColumnDefault | ScalarElementColumnDefault)
    )


@lru_cache(maxsize=64)
def _json_insert(table: Table, names: tuple[str, ...]) -> str:
    """The insert of one group of rows, as SQL for psycopg (``db.driver_rows``)."""
    columns = ", ".join(f'"{name}"' for name in names)
    return (
        f'INSERT INTO "{table.name}" ({columns}) SELECT {columns}'
        f' FROM json_populate_recordset(NULL::"{table.name}", %(rows)s::json)'
    )


def dumps(rows: Any) -> str:
    """``rows`` (or any JSON value) as compact JSON, dates and times in ISO 8601."""
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
