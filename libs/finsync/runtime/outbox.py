"""Outbox: messages written in the effect's transaction, published by the relay after commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from finsync.runtime.messages import Outgoing

CHANNEL = "finsync_outbox"  # NOTIFY channel; the payload is the service name


def add(
    conn: psycopg.Connection,
    service: str,
    messages: Sequence[Outgoing],
    returning: bool = False,
) -> list[int]:
    """Write the messages in order; with `returning`, their outbox ids, in the same order (one
    round trip more: only batches that index dead letters ask for them)."""
    if not messages:
        return []
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO finsync.outbox (service, topic, key, value, header_keys, header_values) "
            "VALUES (%s, %s, %s, %s, %s, %s)" + (" RETURNING id" if returning else ""),
            [
                (
                    service,
                    m.topic,
                    m.key,
                    m.value,
                    [k for k, _ in m.headers],
                    [v for _, v in m.headers],
                )
                for m in messages
            ],
            returning=returning,
        )
        if not returning:
            return []
        ids = []
        while True:
            row = cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
            if not cur.nextset():
                return ids


def notify(conn: psycopg.Connection, service: str) -> None:
    """Wake the service's relay when the transaction commits (NOTIFY is transactional)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, service))


@dataclass(frozen=True)
class Pending:
    id: int
    message: Outgoing


def pending(conn: psycopg.Connection, service: str, limit: int) -> list[Pending]:
    rows = conn.execute(
        "SELECT id, topic, key, value, header_keys, header_values FROM finsync.outbox "
        "WHERE service = %s AND sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT %s",
        (service, limit),
    ).fetchall()
    return [
        Pending(r[0], Outgoing(r[1], r[2], r[3], list(zip(r[4], r[5], strict=True)))) for r in rows
    ]


def mark_sent(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute("UPDATE finsync.outbox SET sent_at = now() WHERE id = ANY(%s)", (ids,))


def mark_failed(conn: psycopg.Connection, failures: list[tuple[int, str]]) -> None:
    """Messages Kafka will never accept: kept with its answer, no longer sent."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE finsync.outbox SET failed_at = now(), error = %s WHERE id = %s",
            [(error, id_) for id_, error in failures],
        )


def backlog(conn: psycopg.Connection) -> dict[str, int]:
    """Messages per service waiting to be published."""
    rows = conn.execute(
        "SELECT service, count(*) FROM finsync.outbox WHERE sent_at IS NULL "
        "AND failed_at IS NULL GROUP BY service"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def failed(conn: psycopg.Connection) -> dict[str, int]:
    """Messages per service that Kafka refused for good (see their `error`)."""
    rows = conn.execute(
        "SELECT service, count(*) FROM finsync.outbox WHERE failed_at IS NOT NULL GROUP BY service"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def prune(conn: psycopg.Connection, service: str, keep_days: int = 1) -> int:
    cur = conn.execute(
        "DELETE FROM finsync.outbox WHERE service = %s AND sent_at IS NOT NULL "
        "AND sent_at < now() - make_interval(days => %s)",
        (service, keep_days),
    )
    return cur.rowcount
