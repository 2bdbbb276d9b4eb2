"""Many rows in one INSERT, sent as one JSON document.

A batch's rows go to PostgreSQL as a single jsonb parameter, taken apart by the server. That
costs the client one `json.dumps` for the whole batch; binding the same rows as one array per
column made the driver dump every element in Python, which cost more than the insert itself.
Values are parameters either way: nothing is spliced into the SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache

import psycopg
from psycopg import sql

# Column types whose text form JSON carries as is, and those the server must cast.
_TEXT = "text"


def _plain(value: object) -> str:
    """JSON's stand-in for what it has no type for: decimals, dates, uuids, bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()  # bytea's hex input form
    return str(value)  # Decimal exactly, date and datetime in ISO form, uuid


@cache
def _statement(table: str, columns: tuple[tuple[str, str], ...], tail: str) -> sql.Composed:
    picks = [
        sql.SQL("x->>{}").format(sql.Literal(i))
        if kind == _TEXT
        else sql.SQL("(x->>{})::{}").format(sql.Literal(i), sql.SQL(kind))
        for i, (_, kind) in enumerate(columns)
    ]
    return sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {picks} FROM jsonb_array_elements(%s::jsonb) AS x"
        "{tail}"
    ).format(
        table=sql.Identifier(*table.split(".")),
        names=sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        picks=sql.SQL(", ").join(picks),
        tail=sql.SQL(tail),
    )


def insert(
    cur: psycopg.Cursor[tuple[object, ...]],
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[object]],
    tail: str = "",
) -> None:
    """INSERT `rows` (tuples in the order of `columns`, each a (name, SQL type)) into `table`.
    `tail` is a constant clause after the SELECT, such as an ON CONFLICT."""
    if rows:
        statement = _statement(table, tuple(columns), tail)
        cur.execute(statement, (json.dumps(rows, default=_plain),))
