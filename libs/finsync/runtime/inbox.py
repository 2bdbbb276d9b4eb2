"""Inbox: (service, event_id) recorded in the effect's transaction, so a redelivery is a no-op;
(service, document_key) too, with the fingerprint of the document's content, so a document
re-sent under a new event_id is a no-op as well when its content is the same, and a
ConflictingResend when it is not (a re-send must never change, or silently not change, what
took effect). Conflicts are seen while the first document's row is kept: the retention window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from finsync.contract.events import Event
from finsync.contract.fingerprint import Fingerprint, differing, fingerprint
from finsync.errors import ConflictingResend
from finsync.runtime import telemetry

# One statement: insert what is new, and read what the inbox held before it (a statement does
# not see its own inserts) for the documents of the events it did not insert: a redelivery
# finds its own event there, a re-send the event its document took effect for. The arrays go
# in binary: in text, escaping them would cost more than the insert.
_CLAIM = """
WITH x AS (
    SELECT * FROM unnest(%(ids)b::uuid[], %(topics)b::text[], %(keys)b::text[],
                         %(prints)b::bytea[], %(fields)b::bytea[], %(traces)b::text[])
                  AS x(e, t, d, f, fd, tr)
), added AS (
    INSERT INTO finsync.inbox
        (service, event_id, topic, document_key, fingerprint, field_digests, trace_id)
    SELECT %(service)s, e, t, d, f, fd, tr FROM x
    ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT event_id, NULL::text, NULL::bytea FROM added
UNION ALL
SELECT event_id, document_key, fingerprint FROM finsync.inbox
WHERE service = %(service)s
  AND document_key IN (SELECT d FROM x WHERE e NOT IN (SELECT event_id FROM added))
"""


@dataclass
class Claim:
    fresh: set[uuid.UUID] = field(default_factory=set)  # to take effect for
    conflicts: dict[uuid.UUID, ConflictingResend] = field(default_factory=dict)  # to dead-letter
    # Everything else was seen before: a redelivery, or the same document re-sent.


@dataclass
class _Taken:
    """The event a document took effect for, and its content's fingerprint (None: unknown)."""

    event_id: uuid.UUID
    digest: bytes | None
    fields: bytes | None = None  # read only when a conflict must name them


def claim(
    conn: psycopg.Connection,
    service: str,
    events: list[Event],
    trace_ids: Sequence[str | None] | None = None,
) -> Claim:
    """Record the events: those whose event and document were not seen before are fresh; one
    re-sent with other content than what took effect for its document is a conflict. In a
    batch, the first record of a document is the one that takes effect. One statement for the
    whole batch, and one more only to name the fields of conflicts. Each row keeps its event's
    trace id: `trace_ids` in the order of `events`, by default the current span's."""
    result = Claim()
    if not events:
        return result
    prints = [fingerprint(e) for e in events]
    traces = [telemetry.current_trace_id()] * len(events) if trace_ids is None else list(trace_ids)
    if len(traces) != len(events):
        raise ValueError(f"{len(traces)} trace ids for {len(events)} events")
    rows = conn.execute(
        _CLAIM,
        {
            "service": service,
            "ids": [e.event_id for e in events],
            "topics": [e.TOPIC for e in events],
            "keys": [e.document_key for e in events],
            "prints": [p.digest for p in prints],
            "fields": [p.fields for p in prints],
            "traces": traces,
        },
    ).fetchall()
    inserted = {r[0] for r in rows if r[1] is None}
    seen = {r[0] for r in rows if r[1] is not None}
    taken = {r[1]: _Taken(r[0], r[2]) for r in rows if r[1] is not None}
    unexplained: list[tuple[Event, Fingerprint]] = []
    for event, p in zip(events, prints, strict=True):
        if event.event_id in seen or event.event_id in result.fresh:
            continue  # a redelivery, or a second copy in this batch
        if event.event_id in inserted:
            result.fresh.add(event.event_id)
            taken[event.document_key] = _Taken(event.event_id, p.digest, p.fields)
            continue
        before = taken.get(event.document_key)
        # None: taken by a transaction that committed while this statement ran; read below.
        if before is None or _differs(before, p):
            unexplained.append((event, p))
    if unexplained:
        _name_conflicts(conn, service, unexplained, taken, result)
    return result


def _differs(before: _Taken, after: Fingerprint) -> bool:
    # A row from before fingerprints were kept has none: its content is unknown, and taking a
    # re-send of it for the same document is what the inbox always did.
    return before.digest is not None and before.digest != after.digest


def _name_conflicts(
    conn: psycopg.Connection,
    service: str,
    events: list[tuple[Event, Fingerprint]],
    taken: dict[str, _Taken],
    result: Claim,
) -> None:
    """Read the field digests of the documents that took effect, to name what differs. Rare."""
    keys = [e.document_key for e, _ in events if taken.get(e.document_key, _NONE).fields is None]
    if keys:
        for key, event_id, digest, fields in conn.execute(
            "SELECT document_key, event_id, fingerprint, field_digests FROM finsync.inbox "
            "WHERE service = %s AND document_key = ANY(%s)",
            (service, keys),
        ):
            taken[key] = _Taken(event_id, digest, fields)
    for event, p in events:
        before = taken.get(event.document_key)
        if before is not None and _differs(before, p):
            result.conflicts[event.event_id] = _conflict(event, before.event_id, before.fields, p)


_NONE = _Taken(uuid.UUID(int=0), None)


def _conflict(
    event: Event, took: uuid.UUID, before: bytes | None, after: Fingerprint
) -> ConflictingResend:
    noun = event.KEY_FIELD.removesuffix("_id").replace("_", " ")
    document = event.document_key.removeprefix(f"{event.TOPIC}:")
    names = differing(before, after) if before is not None else []
    what = f"{', '.join(names)} {'differs' if len(names) == 1 else 'differ'}"
    return ConflictingResend(
        f"{noun} {document} took effect (event {took}) with other content: "
        f"{what if names else 'its content differs'}"
    )


def prune(conn: psycopg.Connection, service: str, retention_days: int) -> int:
    cur = conn.execute(
        "DELETE FROM finsync.inbox WHERE service = %s "
        "AND processed_at < now() - make_interval(days => %s)",
        (service, retention_days),
    )
    return cur.rowcount
