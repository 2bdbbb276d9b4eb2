"""Inbox: (service, event_id) recorded in the effect's transaction, so a redelivery is a no-op."""

from __future__ import annotations

import uuid

import psycopg


def claim(
    conn: psycopg.Connection, service: str, events: list[tuple[uuid.UUID, str]]
) -> set[uuid.UUID]:
    """Record the events; returns those not seen before (the ones to take effect for)."""
    if not events:
        return set()
    rows = conn.execute(
        "INSERT INTO finsync.inbox (service, event_id, topic) "
        "SELECT %s, e, t FROM unnest(%s::uuid[], %s::text[]) AS x(e, t) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (service, [e for e, _ in events], [t for _, t in events]),
    ).fetchall()
    return {r[0] for r in rows}


def release(conn: psycopg.Connection, service: str, event_id: uuid.UUID) -> None:
    """Forget an event whose effect did not happen, so a retry or replay takes effect."""
    conn.execute(
        "DELETE FROM finsync.inbox WHERE service = %s AND event_id = %s", (service, event_id)
    )


def prune(conn: psycopg.Connection, service: str, retention_days: int) -> int:
    cur = conn.execute(
        "DELETE FROM finsync.inbox WHERE service = %s "
        "AND processed_at < now() - make_interval(days => %s)",
        (service, retention_days),
    )
    return cur.rowcount
