"""Many rows in one INSERT, sent as one JSON document.

A batch's rows go to PostgreSQL as a single jsonb parameter, taken apart by the server. Binding
the same rows as one array per column made the driver dump every element in Python, which cost
more than the insert itself; the document is written by msgspec in compiled code, decimals,
dates, times and uuids included (the standard library's encoder called back into Python for
each of those: 67 µs for an invoice's 11 schedule rows, against 6). Values are parameters
either way: nothing is spliced into the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import msgspec
import psycopg
from psycopg import sql

# Column types whose text form JSON carries as is, and those the server must cast.
_TEXT = "text"

_encoder = msgspec.json.Encoder()


def rows_document(rows: Sequence[Any]) -> str:
    """Rows (tuples, lists, dicts) as one JSON text for a jsonb parameter: a Decimal exactly as
    its digits ("1.50", "1E+2"), a date or time in ISO form, a uuid as text, bytes in base64,
    an enum by its value. Any other type is a TypeError. Two things to keep out: a time whose
    UTC offset has seconds (its offset is written to the minute) and a float that is not
    finite (written as null); finsync's rows hold neither."""
    return _encoder.encode(rows).decode()


@cache
def _statement(table: str, columns: tuple[tuple[str, str], ...], tail: str) -> sql.Composed:
    picks = [_pick(i, kind) for i, (_, kind) in enumerate(columns)]
    return sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {picks} FROM jsonb_array_elements(%s::jsonb) AS x"
        "{tail}"
    ).format(
        table=sql.Identifier(*table.split(".")),
        names=sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        picks=sql.SQL(", ").join(picks),
        tail=sql.SQL(tail),
    )


def _pick(i: int, kind: str) -> sql.Composable:
    if kind == _TEXT:
        return sql.SQL("x->>{}").format(sql.Literal(i))
    if kind == "bytea":  # bytes travel in base64
        return sql.SQL("decode(x->>{}, 'base64')").format(sql.Literal(i))
    return sql.SQL("(x->>{})::{}").format(sql.Literal(i), sql.SQL(kind))


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
        cur.execute(statement, (rows_document(rows),))
