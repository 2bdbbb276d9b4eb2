"""What an operator does to dead letters of the index, besides replaying them: assign, resolve,
reopen, note. Each is one statement for any number of letters, plus one audit statement, in
one transaction; each returns the ids it changed. Rows are locked in id order, as the runtime
locks them, so a batch settling replayed letters never deadlocks with an operator."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from finsync.ops import audit


def _locked(condition: str) -> str:
    return (
        "id IN (SELECT id FROM finsync.dead_letters WHERE id = ANY(%(ids)s) "
        f"AND {condition} ORDER BY id FOR UPDATE)"
    )


def _change(
    conn: psycopg.Connection,
    ids: Sequence[int],
    actor: str,
    action: str,
    assignments: str,
    condition: str,
    values: dict[str, object],
) -> list[int]:
    if not actor.strip():
        raise ValueError(f"{action} needs an actor: who takes it")
    if not ids:
        return []
    with conn.transaction():
        rows = conn.execute(
            f"UPDATE finsync.dead_letters SET {assignments}, updated_at = now() "
            f"WHERE {_locked(condition)} RETURNING id",
            {**values, "ids": sorted(set(ids))},
        ).fetchall()
        changed = sorted(r[0] for r in rows)
        detail = {k: v for k, v in values.items() if v is not None}
        audit.record_many(conn, actor, action, [audit.letter(i) for i in changed], detail)
    return changed


_APPEND = "notes = concat_ws(E'\\n', notes, %(note)s::text)"


def assign(
    conn: psycopg.Connection, ids: Sequence[int], assignee: str | None, actor: str
) -> list[int]:
    """Give the letters to `assignee` (None: to nobody)."""
    return _change(
        conn,
        ids,
        actor,
        "assign",
        "assignee = %(assignee)s::text",
        "assignee IS DISTINCT FROM %(assignee)s::text",
        {"assignee": assignee},
    )


def resolve(conn: psycopg.Connection, ids: Sequence[int], note: str, actor: str) -> list[int]:
    """Close the letters: dealt with, needing nothing more. The note says how."""
    if not note.strip():
        raise ValueError("resolving needs a note: how the letter was dealt with")
    return _change(
        conn,
        ids,
        actor,
        "resolve",
        f"status = 'resolved', {_APPEND}",
        "status <> 'resolved'",
        {"note": note},
    )


def reopen(conn: psycopg.Connection, ids: Sequence[int], note: str, actor: str) -> list[int]:
    """Open the letters again: a resolution that did not hold, a replay that went nowhere."""
    return _change(
        conn,
        ids,
        actor,
        "reopen",
        f"status = 'open', {_APPEND}",
        "status <> 'open'",
        {"note": note.strip() or None},
    )


def note(conn: psycopg.Connection, id_: int, text: str, actor: str) -> bool:
    """Add a line to the letter's notes; False if there is no such letter."""
    if not text.strip():
        raise ValueError("a note needs some text")
    return bool(_change(conn, [id_], actor, "note", _APPEND, "TRUE", {"note": text}))
