"""Inbox: (service, event_id) recorded in the effect's transaction, so a redelivery is a no-op;
(service, document_key) too, so a document re-sent under a new event_id is one as well."""

from __future__ import annotations

import uuid

import psycopg

from finsync.contract.events import Event


def claim(conn: psycopg.Connection, service: str, events: list[Event]) -> set[uuid.UUID]:
    """Record the events; returns the ids of those whose event and document were not seen
    before (the ones to take effect for). One statement for the whole batch."""
    if not events:
        return set()
    rows = conn.execute(
        "INSERT INTO finsync.inbox (service, event_id, topic, document_key) "
        "SELECT %s, e, t, d FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS x(e, t, d) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (
            service,
            [e.event_id for e in events],
            [e.TOPIC for e in events],
            [e.document_key for e in events],
        ),
    ).fetchall()
    return {r[0] for r in rows}


def prune(conn: psycopg.Connection, service: str, retention_days: int) -> int:
    cur = conn.execute(
        "DELETE FROM finsync.inbox WHERE service = %s "
        "AND processed_at < now() - make_interval(days => %s)",
        (service, retention_days),
    )
    return cur.rowcount
