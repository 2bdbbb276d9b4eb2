"""Per-key order through retries: while a record of a key waits in `<service>.retry`, later
records of that key wait behind it, parked in the retry topic in order; other keys flow.

Every record sent to retry holds a ticket (`finsync.parked`): a sequence number taken when it
first joined its key's queue, and a generation bumped each time it goes to retry again. The
copy in the retry topic carries both in headers. A record is taken up only while its ticket is
the lowest of its key; one behind is sent to retry again, due when the head is. A copy whose
ticket is gone, or of an older generation, is a stale redelivery (say, after a failed offset
commit) and is skipped, so one event never runs in two retry chains. A record that ends as a
dead letter leaves its origin in `finsync.dead_lettered`, so a redelivery of it is skipped too,
in any batch, even after its chain has ended.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace

import psycopg

from finsync.runtime import headers as h
from finsync.runtime.failures import Origin, as_retry
from finsync.runtime.messages import Headers, Outgoing, Record

# Past the input topics' retention (14 days) and the 7 days a segment may wait to roll: no
# redelivery of a dead-lettered record can come later.
DEAD_LETTERED_KEPT_DAYS = 30

Position = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class Ticket:
    seq: int
    generation: int
    due_ms: int

    @property
    def headers(self) -> Headers:
        return [
            (h.RETRY_SEQ, str(self.seq).encode()),
            (h.RETRY_GENERATION, str(self.generation).encode()),
        ]


def ticket_of(record: Record) -> tuple[int, int] | None:
    """The (seq, generation) a record in the retry topic carries, if any."""
    seq, generation = record.header_text(h.RETRY_SEQ), record.header_text(h.RETRY_GENERATION)
    if seq is None or generation is None:
        return None
    try:
        return int(seq), int(generation)
    except ValueError:
        return None


def key_hash(key: bytes) -> bytes:
    """How finsync.parked files a key: its SHA-256, so a key of any length fits the index."""
    return hashlib.sha256(key).digest()


class Queues:
    """The queues of the keys of one batch, read once and kept in step with what the batch
    writes, so later records of the batch see the tickets earlier ones took or gave back."""

    def __init__(self, conn: psycopg.Connection, service: str, records: list[Record]) -> None:
        self.conn = conn
        self.service = service
        self._tickets: dict[bytes, list[Ticket]] = defaultdict(list)
        self._origins: set[Position] = set()
        self._dead: set[Position] = set()  # records of the batch dead-lettered before
        if not records:
            return
        # Both statements go out before either result is read: one round trip in pipeline mode.
        dead = conn.execute(
            "SELECT d.origin_topic, d.origin_partition, d.origin_offset "
            "FROM finsync.dead_lettered d JOIN unnest(%s::text[], %s::int[], %s::bigint[]) "
            "AS b(topic, part, off) ON d.origin_topic = b.topic "
            "AND d.origin_partition = b.part AND d.origin_offset = b.off WHERE d.service = %s",
            (
                [r.topic for r in records],
                [r.partition for r in records],
                [r.offset for r in records],
                service,
            ),
        )
        keys = list({key_hash(r.key) for r in records if r.key is not None})
        queued = conn.execute(
            "SELECT key_hash, seq, generation, due_ms, origin_topic, origin_partition, "
            "origin_offset FROM finsync.parked WHERE service = %s AND key_hash = ANY(%s) "
            "ORDER BY seq",
            (service, keys),
        )
        self._dead = {(t, p, o) for t, p, o in dead.fetchall()}
        for hashed, seq, generation, due_ms, topic, partition, offset in queued.fetchall():
            self._tickets[hashed].append(Ticket(seq, generation, due_ms))
            self._origins.add((topic, partition, offset))

    def empty(self) -> bool:
        return not self._origins

    def head(self, key: bytes) -> Ticket | None:
        queue = self._tickets.get(key_hash(key))
        return queue[0] if queue else None

    def find(self, key: bytes, seq: int) -> Ticket | None:
        return next((t for t in self._tickets.get(key_hash(key), []) if t.seq == seq), None)

    def carried(self, record: Record) -> Ticket | None:
        """The live ticket whose copy this record is; None for a stale copy or none at all."""
        carried = ticket_of(record)
        if carried is None or record.key is None:
            return None
        live = self.find(record.key, carried[0])
        return live if live is not None and live.generation == carried[1] else None

    def dead_before(self, record: Record) -> bool:
        """True if this very record (its topic, partition, offset) was dead-lettered before."""
        return (record.topic, record.partition, record.offset) in self._dead

    def holds(self, record: Record) -> bool:
        """True if this very record (its topic, partition, offset) already joined a queue."""
        return (record.topic, record.partition, record.offset) in self._origins

    def join(self, record: Record, due_ms: int) -> Ticket | None:
        """A ticket at the back of the record's key queue; None if the record holds one."""
        assert record.key is not None
        row = self.conn.execute(
            "INSERT INTO finsync.parked (service, key_hash, due_ms, origin_topic, "
            "origin_partition, origin_offset) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING seq",
            (
                self.service,
                key_hash(record.key),
                due_ms,
                record.topic,
                record.partition,
                record.offset,
            ),
        ).fetchone()
        if row is None:
            return None
        ticket = Ticket(row[0], 0, due_ms)
        self._tickets[key_hash(record.key)].append(ticket)
        self._origins.add((record.topic, record.partition, record.offset))
        return ticket

    def again(self, key: bytes, ticket: Ticket, due_ms: int) -> Ticket:
        """The same place in the queue, for the record's next copy in the retry topic."""
        self.conn.execute(
            "UPDATE finsync.parked SET generation = generation + 1, due_ms = %s "
            "WHERE service = %s AND seq = %s",
            (due_ms, self.service, ticket.seq),
        )
        renewed = replace(ticket, generation=ticket.generation + 1, due_ms=due_ms)
        queue = self._tickets[key_hash(key)]
        queue[queue.index(ticket)] = renewed
        return renewed

    def done(self, record: Record, ticket: Ticket | None) -> None:
        """The record took effect or was dead-lettered: the next of its key may go."""
        if ticket is None or record.key is None:
            return
        self.conn.execute(
            "DELETE FROM finsync.parked WHERE service = %s AND seq = %s", (self.service, ticket.seq)
        )
        self._tickets[key_hash(record.key)].remove(ticket)

    def dead_lettered(self, record: Record, ticket: Ticket | None) -> bool:
        """The record ends as a dead letter: the next of its key may go, and where it came in
        is kept, so a redelivery of it is skipped. False if this very record was dead-lettered
        already: the caller then sends no second dead letter."""
        if ticket is not None:  # its input record is where its ticket was taken
            self.conn.execute(
                "INSERT INTO finsync.dead_lettered (service, origin_topic, origin_partition, "
                "origin_offset) SELECT service, origin_topic, origin_partition, origin_offset "
                "FROM finsync.parked WHERE service = %s AND seq = %s ON CONFLICT DO NOTHING",
                (self.service, ticket.seq),
            )
            self.done(record, ticket)
            return True
        position = (record.topic, record.partition, record.offset)
        if position in self._dead:
            return False
        row = self.conn.execute(
            "INSERT INTO finsync.dead_lettered (service, origin_topic, origin_partition, "
            "origin_offset) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (self.service, *position),
        ).fetchone()
        self._dead.add(position)
        return row is not None


def prune(conn: psycopg.Connection, service: str) -> int:
    """Forget dead-lettered records that no topic can deliver again."""
    cur = conn.execute(
        "DELETE FROM finsync.dead_lettered WHERE service = %s "
        "AND dead_lettered_at < now() - make_interval(days => %s)",
        (service, DEAD_LETTERED_KEPT_DAYS),
    )
    return cur.rowcount


@dataclass(frozen=True)
class Place:
    """Where a record stands in its key's queue, before anything is done for it."""

    outcome: str | None  # "parked" or "duplicate": not handled now; None: handle it now
    ticket: Ticket | None = None  # a head's ticket, given back once it is done
    parked: Outgoing | None = None  # its copy waiting behind the head in the retry topic


def place(record: Record, queues: Queues, service: str) -> Place:
    """Handle it now (no queue, or the head of one), park it behind its key's head, or skip
    it as a redelivery of a record that is queued already."""
    if queues.dead_before(record):
        return Place("duplicate")
    if record.key is None:
        return Place(None)
    carried = ticket_of(record)
    if carried is None:  # a first delivery, or a dead letter replayed
        if queues.holds(record):
            return Place("duplicate")
        head = queues.head(record.key)
        if head is None:
            return Place(None)
        ticket = queues.join(record, head.due_ms)
        if ticket is None:
            return Place("duplicate")
    else:
        live = queues.carried(record)
        if live is None:
            return Place("duplicate")
        head = queues.head(record.key)
        assert head is not None
        if head.seq == live.seq:
            return Place(None, ticket=live)
        ticket = queues.again(record.key, live, head.due_ms)
    origin = Origin.of(record)
    copy = as_retry(
        record,
        service,
        origin,
        origin.attempts,
        head.due_ms,
        origin.first_failure_ms,
        ticket.headers,
    )
    return Place("parked", parked=copy)
