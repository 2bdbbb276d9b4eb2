"""Outbox: messages written in the effect's transaction, published by the relay after commit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg

from finsync.runtime import bulk
from finsync.runtime.messages import Outgoing

CHANNEL = "finsync_outbox"  # NOTIFY channel; the payload is the service name


# The batch's messages as one JSON document (bytes in base64): one statement, with nothing
# dumped row by row in Python (see bulk.py). Ordered by their place in the batch, so the ids
# the sequence gives them run in the same order.
_ADD = """
INSERT INTO finsync.outbox (service, topic, key, value, header_keys, header_values)
SELECT %s, m.x->>0, decode(m.x->>1, 'base64'), decode(m.x->>2, 'base64'),
       ARRAY(SELECT k FROM jsonb_array_elements_text(m.x->3) WITH ORDINALITY AS h(k, n)
             ORDER BY h.n),
       ARRAY(SELECT decode(v, 'base64')
             FROM jsonb_array_elements_text(m.x->4) WITH ORDINALITY AS h(v, n) ORDER BY h.n)
FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS m(x, n)
ORDER BY m.n
"""


# A jsonb value holds at most 256 MB, and a batch of dead letters may carry 500 records of a
# megabyte each (base64 makes them a third larger): the messages go in documents of at most
# this many bytes of keys, values and headers, each its own statement, in order.
CHUNK_BYTES = 32 * 1024 * 1024


def add(
    conn: psycopg.Connection,
    service: str,
    messages: Sequence[Outgoing],
    returning: bool = False,
) -> list[int]:
    """Write the messages in order; with `returning`, their outbox ids, in the same order (only
    batches that index dead letters ask for them)."""
    ids: list[int] = []
    for chunk in _chunks(messages):
        rows = bulk.rows_document(
            [
                (m.topic, m.key, m.value, [k for k, _ in m.headers], [v for _, v in m.headers])
                for m in chunk
            ]
        )
        if not returning:
            conn.execute(_ADD, (service, rows))
            continue
        added = conn.execute(_ADD + " RETURNING id", (service, rows)).fetchall()
        ids += sorted(int(r[0]) for r in added)  # given in the chunk's order: see _ADD
    return ids


def _chunks(messages: Sequence[Outgoing]) -> Iterator[Sequence[Outgoing]]:
    start, size = 0, 0
    for i, m in enumerate(messages):
        weight = len(m.key or b"") + len(m.value or b"") + sum(len(v or b"") for _, v in m.headers)
        if i > start and size + weight > CHUNK_BYTES:
            yield messages[start:i]
            start, size = i, 0
        size += weight
    if start < len(messages):
        yield messages[start:]


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
