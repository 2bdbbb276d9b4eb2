"""The operators' audit trail, `finsync.ops_audit`: who did what to which target, and why.

Targets are strings such as `dead-letter:42`; the detail is JSON (a reason, a note, a replay's
id). Rows are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from finsync.runtime import bulk


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)


def letter(id_: int) -> str:
    """The audit target of a dead letter of the index."""
    return f"dead-letter:{id_}"


def record(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    record_many(conn, actor, action, [target], detail or {})


def record_many(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    targets: Sequence[str],
    detail: Mapping[str, Any],
) -> None:
    """One row per target, in their order, all with the same detail, in one statement: the
    targets as one JSON document (see runtime/bulk.py), the detail once."""
    if not targets:
        return
    if not actor.strip():
        raise ValueError("an audited action needs an actor: who takes it")
    conn.execute(
        "INSERT INTO finsync.ops_audit (actor, action, target, detail) "
        "SELECT %s, %s, x.t, (%s::jsonb)->0 "
        "FROM jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY AS x(t, n) ORDER BY x.n",
        (actor, action, bulk.rows_document([dict(detail)]), bulk.rows_document(list(targets))),
        prepare=False,
    )


def for_target(conn: psycopg.Connection, target: str) -> list[Entry]:
    """Everything done to `target`, oldest first."""
    rows = conn.execute(
        "SELECT id, at, actor, action, target, detail FROM finsync.ops_audit "
        "WHERE target = %s ORDER BY id",
        (target,),
    ).fetchall()
    return [Entry(*r) for r in rows]
