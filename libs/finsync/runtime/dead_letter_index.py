"""The dead-letter index, `finsync.dead_letters`: one row per dead letter, written in the batch
transaction that puts the letter in the outbox, so what an SRE filters on is a SQL query and
never a scan of the dead-letter topic.

Three writers, all in the runtime: `publish` (the batch: a row per dead letter, only batches
that have one pay for it), `stamp` (the relay: where Kafka put the letter) and `Settled` (the
batch again: a replayed letter that took effect, or was found done already, is resolved).
The fields come from the headers `failures.dead_letter` sets, parsed by the pure `row_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from finsync.contract.topics import dlq_topic, retry_topic
from finsync.runtime import headers as h
from finsync.runtime import outbox
from finsync.runtime.messages import Headers, Outgoing, Record

CATEGORIES = ("permanent", "retries-exhausted")


@dataclass(frozen=True)
class Row:
    """A dead letter as the index stores it (what the relay and operators add is elsewhere)."""

    service: str
    dlq_topic: str
    message_key: str | None
    event_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp: datetime | None
    stage: str
    error_class: str
    category: str
    reason: str
    stack: str
    attempts: int
    trace_id: str | None
    failed_at: datetime
    key: bytes | None
    value: bytes | None
    headers: Headers  # the publisher's own, byte for byte
    replay_of: int | None  # the indexed letter whose replay this is


def _clean(text: str) -> str:
    """PostgreSQL text holds no NUL: a hostile key or a reason quoting one must still index."""
    return text.replace("\x00", "\ufffd")


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _ms(ms: int) -> datetime | None:
    """None for a time no datetime holds: a publisher sets a record's timestamp."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _when(text: str | None, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else default
    except ValueError:
        return default


def row_of(
    service: str,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    fallback_ms: int = 0,
) -> Row:
    """Parse a dead letter's headers. Tolerant, since letters written before a header existed
    (or by another tool) are indexed too: what is missing is empty, or `fallback_ms` (the
    topic's timestamp of the letter) for when it failed."""
    letter = Record(topic, 0, 0, fallback_ms, key, value, headers)

    def text(name: str) -> str:
        return _clean(letter.header_text(name) or "")

    timestamp = _int(letter.header_text(h.ERR_TIMESTAMP), -1)
    replayed = _int(letter.header_text(h.REPLAY_DEAD_LETTER), -1)
    return Row(
        service=text(h.ERR_CONNECTOR) or service,
        dlq_topic=topic,
        message_key=None if key is None else _clean(key.decode("utf-8", "replace")),
        event_id=text(h.ERR_EVENT_ID) or None,
        source_topic=text(h.ERR_TOPIC),
        source_partition=_int(letter.header_text(h.ERR_PARTITION), -1),
        source_offset=_int(letter.header_text(h.ERR_OFFSET), -1),
        source_timestamp=_ms(timestamp) if timestamp >= 0 else None,
        stage=text(h.ERR_STAGE),
        error_class=text(h.ERR_EXCEPTION_CLASS).rsplit(".", 1)[-1],
        category=text(h.ERR_CLASS),
        reason=text(h.ERR_EXCEPTION_MESSAGE),
        stack=text(h.ERR_EXCEPTION_STACKTRACE),
        attempts=_int(letter.header_text(h.ERR_ATTEMPTS), 0),
        trace_id=text(h.ERR_TRACE_ID) or None,
        failed_at=_when(
            letter.header_text(h.ERR_LAST_FAILURE), _ms(fallback_ms) or datetime.now(UTC)
        ),
        key=key,
        value=value,
        headers=[(_clean(k), v) for k, v in headers if not h.is_runtime(k)],
        replay_of=replayed if replayed > 0 else None,
    )


_COLUMNS = (
    "service, outbox_id, dlq_topic, dlq_partition, dlq_offset, message_key, event_id, "
    "source_topic, source_partition, source_offset, source_timestamp, stage, error_class, "
    "category, reason, stack, attempts, trace_id, failed_at, key, value, header_keys, "
    "header_values, replay_of, replays"
)
_VALUES = (  # typed: in a SELECT list, a NULL would otherwise be text
    "%(service)s::text, %(outbox_id)s::bigint, %(dlq_topic)s::text, %(dlq_partition)s::int, "
    "%(dlq_offset)s::bigint, %(message_key)s::text, %(event_id)s::text, "
    "%(source_topic)s::text, %(source_partition)s::int, %(source_offset)s::bigint, "
    "%(source_timestamp)s::timestamptz, %(stage)s::text, %(error_class)s::text, "
    "%(category)s::text, %(reason)s::text, %(stack)s::text, %(attempts)s::int, "
    "%(trace_id)s::text, %(failed_at)s::timestamptz, %(key)s::bytea, %(value)s::bytea, "
    "%(header_keys)s::text[], %(header_values)s::bytea[]"
)

# A replay that failed again: the letter replayed counts one more failed replay of its content
# (the loop guard reads it), rows locked in id order as everywhere else, so a batch never
# waits in a cycle with a replay or an operator.
_BUMP = """
UPDATE finsync.dead_letters d SET replays = d.replays + x.n, updated_at = now()
FROM (SELECT id, count(*) AS n FROM unnest(%(ids)s::bigint[]) AS u(id) GROUP BY id) AS x
WHERE d.id = x.id AND d.id IN (
    SELECT id FROM finsync.dead_letters WHERE id = ANY(%(ids)s) AND service = %(service)s
    ORDER BY id FOR UPDATE
)
"""

# ... and the new letter links it and carries its count. A link to a letter this index does
# not hold (deleted, another database) is dropped rather than failing the batch.
_INSERT = f"""
INSERT INTO finsync.dead_letters ({_COLUMNS})
SELECT {_VALUES}, p.id, coalesce(p.replays, 0)
FROM (SELECT 1) AS one
LEFT JOIN finsync.dead_letters p
       ON p.id = %(replay_of)s::bigint AND p.service = %(service)s::text
"""

# Backfill from the topic: links what it can, counts nothing twice.
_BACKFILL = f"""
INSERT INTO finsync.dead_letters ({_COLUMNS})
SELECT {_VALUES}, p.id, coalesce(p.replays + 1, 0)
FROM (SELECT 1) AS one
LEFT JOIN finsync.dead_letters p
       ON p.id = %(replay_of)s::bigint AND p.service = %(service)s::text
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO NOTHING
"""


def _params(
    row: Row, outbox_id: int | None, partition: int | None, offset: int | None
) -> dict[str, Any]:
    return {
        "service": row.service,
        "outbox_id": outbox_id,
        "dlq_topic": row.dlq_topic,
        "dlq_partition": partition,
        "dlq_offset": offset,
        "message_key": row.message_key,
        "event_id": row.event_id,
        "source_topic": row.source_topic,
        "source_partition": row.source_partition,
        "source_offset": row.source_offset,
        "source_timestamp": row.source_timestamp,
        "stage": row.stage,
        "error_class": row.error_class,
        "category": row.category,
        "reason": row.reason,
        "stack": row.stack,
        "attempts": row.attempts,
        "trace_id": row.trace_id,
        "failed_at": row.failed_at,
        "key": row.key,
        "value": row.value,
        "header_keys": [k for k, _ in row.headers],
        "header_values": [v for _, v in row.headers],
        "replay_of": row.replay_of,
    }


def publish(conn: psycopg.Connection, service: str, messages: Sequence[Outgoing]) -> None:
    """outbox.add, and an index row for each dead letter among the messages, in the caller's
    transaction. A batch without dead letters writes the outbox exactly as before."""
    topic = dlq_topic(service)
    if not any(m.topic == topic for m in messages):
        outbox.add(conn, service, messages)
        return
    ids = outbox.add(conn, service, messages, returning=True)
    rows = [
        _params(row_of(service, m.topic, m.key, m.value, m.headers), id_, None, None)
        for id_, m in zip(ids, messages, strict=True)
        if m.topic == topic
    ]
    replayed = [r["replay_of"] for r in rows if r["replay_of"] is not None]
    if replayed:
        conn.execute(_BUMP, {"ids": replayed, "service": service})
    with conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


def backfill(conn: psycopg.Connection, service: str, letters: Sequence[Record]) -> int:
    """Index letters read from one dead-letter topic; returns how many rows were added. A
    letter held already (same topic, partition, offset) is skipped, and one the relay has not
    stamped yet (same origin, same failure time) is given its place rather than a second row.
    Three statements for any number of letters."""
    if not letters:
        return 0
    topic = letters[0].topic
    found = conn.execute(
        "SELECT dlq_partition, dlq_offset FROM finsync.dead_letters WHERE dlq_topic = %s "
        "AND (dlq_partition, dlq_offset) IN (SELECT * FROM unnest(%s::int[], %s::bigint[]))",
        (topic, [r.partition for r in letters], [r.offset for r in letters]),
    ).fetchall()
    known = {(p, o) for p, o in found}
    fresh = [
        (r, row_of(service, r.topic, r.key, r.value, r.headers, r.timestamp_ms))
        for r in letters
        if (r.partition, r.offset) not in known
    ]
    if not fresh:
        return 0
    adopted = conn.execute(
        "UPDATE finsync.dead_letters d SET dlq_partition = x.p, dlq_offset = x.o "
        "FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::int[], %s::bigint[], "
        "%s::timestamptz[]) AS x(p, o, st, sp, so, fa) "
        "WHERE d.dlq_topic = %s AND d.dlq_partition IS NULL AND d.dlq_offset IS NULL "
        "AND d.source_topic = x.st "
        "AND d.source_partition = x.sp AND d.source_offset = x.so AND d.failed_at = x.fa "
        "RETURNING x.p, x.o",
        (
            [r.partition for r, _ in fresh],
            [r.offset for r, _ in fresh],
            [row.source_topic for _, row in fresh],
            [row.source_partition for _, row in fresh],
            [row.source_offset for _, row in fresh],
            [row.failed_at for _, row in fresh],
            topic,
        ),
    ).fetchall()
    placed = {(p, o) for p, o in adopted}
    rest = [
        _params(row, None, r.partition, r.offset)
        for r, row in fresh
        if (r.partition, r.offset) not in placed
    ]
    with conn.cursor() as cur:
        cur.executemany(_BACKFILL, rest)
    return len(rest)


def stamp(conn: psycopg.Connection, positions: Sequence[tuple[int, int, int]]) -> None:
    """Where Kafka put the letters, by outbox id: (outbox id, partition, offset). A position the
    index holds already (a backfill got there first) is left alone rather than failing."""
    if not positions:
        return
    conn.execute(
        "UPDATE finsync.dead_letters d SET dlq_partition = x.p, dlq_offset = x.o "
        "FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) AS x(id, p, o) "
        "WHERE d.outbox_id = x.id AND d.id IN (SELECT id FROM finsync.dead_letters "
        "WHERE outbox_id = ANY(%s) AND dlq_offset IS NULL ORDER BY id FOR UPDATE) "
        "AND NOT EXISTS (SELECT 1 FROM finsync.dead_letters e WHERE e.dlq_topic = d.dlq_topic "
        "AND e.dlq_partition = x.p AND e.dlq_offset = x.o)",
        (
            [p[0] for p in positions],
            [p[1] for p in positions],
            [p[2] for p in positions],
            [p[0] for p in positions],
        ),
    )


# Rows locked in id order, as ops does, so a replay stamping its letters and a batch resolving
# them never wait on each other in a cycle. Only a replay the audit holds resolves a letter:
# headers are only claims, and a record on the retry topic could carry any.
_RESOLVE = """
WITH x AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(notes)s::text[], %(replays)s::text[])
        AS x(id, note, replay)
    WHERE EXISTS (SELECT 1 FROM finsync.replay_audit a WHERE a.dead_letter_id = x.id
                  AND a.replay_id::text = x.replay AND NOT a.dry_run)
),
done AS (
    UPDATE finsync.dead_letters d
    SET status = 'resolved', updated_at = now(), notes = concat_ws(E'\\n', d.notes, x.note)
    FROM x
    WHERE d.id = x.id AND d.id IN (
        SELECT id FROM finsync.dead_letters
        WHERE id = ANY(%(ids)s) AND service = %(service)s AND status <> 'resolved'
        ORDER BY id FOR UPDATE
    )
    RETURNING d.id, x.note
)
INSERT INTO finsync.ops_audit (actor, action, target, detail)
SELECT %(service)s, 'resolve', 'dead-letter:' || id, jsonb_build_object('note', note)
FROM done
"""


class Settled:
    """The replayed letters a batch settled: its record took effect, or was found done. The
    batch resolves them in its own transaction, so the status is true once it commits."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._retry = retry_topic(service)  # replays arrive only there
        self._notes: dict[int, tuple[str, str]] = {}  # letter -> (note, replay id)

    def note(self, record: Record, outcome: str) -> None:
        if record.topic != self._retry:
            return
        letter = _int(record.header_text(h.REPLAY_DEAD_LETTER), -1)
        if letter <= 0:
            return
        replay = record.header_text(h.REPLAY_ID) or ""
        if outcome == "processed":
            self._notes[letter] = (f"took effect after replay {replay}", replay)
        else:
            self._notes[letter] = (f"had taken effect already (found by replay {replay})", replay)

    def write(self, conn: psycopg.Connection) -> None:
        if not self._notes:
            return
        ids = sorted(self._notes)
        conn.execute(
            _RESOLVE,
            {
                "ids": ids,
                "notes": [self._notes[i][0] for i in ids],
                "replays": [self._notes[i][1] for i in ids],
                "service": self.service,
            },
        )
        self._notes.clear()
