"""One batch of records, one database transaction: inbox, effects, outbox, failures.

The batch first runs as a whole, in pipeline mode, with one unit of work whose writes go out
in multi-row statements. If any record fails, that transaction is rolled back and the batch
is redone with a savepoint per record, so the failing record rolls back alone and is routed
to retry or dead letters in the same transaction. An Outage aborts the batch either way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pydantic

from finsync.contract.events import Event
from finsync.errors import (
    FinsyncError,
    InvalidEvent,
    Outage,
    PermanentError,
    TransientError,
    UnexpectedError,
)
from finsync.runtime import (
    db,
    dead_letter_index,
    failures,
    headers,
    inbox,
    outbox,
    parking,
    telemetry,
)
from finsync.runtime.failures import RetryPolicy
from finsync.runtime.messages import Headers, Outgoing, Record
from finsync.runtime.serde import Serde
from finsync.service import Service

log = logging.getLogger("finsync.processing")

# Lost races between transactions: worth another try.
_TRANSIENT_DB = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.QueryCanceled,  # a statement or lock timeout
)


def classify(exc: Exception) -> FinsyncError:
    if isinstance(exc, FinsyncError):
        return exc
    if isinstance(exc, pydantic.ValidationError):
        return InvalidEvent(f"event does not match its type: {exc}")
    if isinstance(exc, _TRANSIENT_DB):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        # The downstream system's own idempotency key: this document took effect before.
        return PermanentError(f"already took effect: {exc.diag.message_detail or exc}")
    wrapped = UnexpectedError(f"{type(exc).__name__}: {exc}")
    wrapped.__cause__ = exc
    return wrapped


CHUNK = 100  # records whose writes are sent together, while the next ones are worked on

Decoded = tuple[Record, Event | None, PermanentError | None]


def _outside_savepoints(write: Callable[..., None], *args: Any) -> None:
    """A write of the whole batch's (the outbox, the dead-letter index) that lost a race for a
    lock holds the batch to be redone, as an outage does, instead of stopping the service."""
    try:
        write(*args)
    except _TRANSIENT_DB as exc:
        raise Outage(f"the batch lost a lock race ({type(exc).__name__}); redoing it") from exc


def _flush(uow: Any) -> None:
    """Dependencies that buffer their writes send them now, before the transaction commits."""
    flush = getattr(uow, "flush", None)
    if flush is not None:
        flush()


class _Queued(Exception):
    """The batch holds records of keys that wait in retry: it is done record by record."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class BatchProcessor:
    def __init__(
        self,
        service: Service[Any],
        serde: Serde,
        policy: RetryPolicy,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.service = service
        self.serde = serde
        self.policy = policy
        self.clock_ms = clock_ms

    def process(self, conn: psycopg.Connection, records: list[Record]) -> Counter[str]:
        """Take effect for every record exactly once; returns counts by outcome.

        Optimistic first: the whole batch in one transaction, no savepoints. If any record
        fails, that transaction is rolled back and the batch is redone with a savepoint per
        record, so the failing one is routed alone and the others still take effect.
        """
        decoded = [self._decode_or_error(self._as_published(r)) for r in records]
        try:
            return self._apply(conn, decoded, isolate=False)
        except _Queued:
            return self._apply(conn, decoded, isolate=True)
        except Exception as exc:
            if db.is_outage(exc):
                raise
            log.info(  # the class only: a reason may quote the event's personal data
                "a record failed (%s); redoing the batch record by record", type(exc).__name__
            )
            return self._apply(conn, decoded, isolate=True)

    def _as_published(self, record: Record) -> Record:
        """A record of an input topic is a first delivery: headers there under finsync's own
        names were set or copied by its publisher, and must not pass for a retry's (a ticket
        in its key's queue, attempts so far). Records of the retry topic carry ours."""
        if record.topic not in self.service.handlers:
            return record
        return replace(record, headers=failures.publisher_headers(record))

    def _decode_or_error(self, record: Record) -> Decoded:
        try:
            return record, self._decode(record), None
        except PermanentError as exc:
            return record, None, exc

    def _apply(
        self, conn: psycopg.Connection, decoded: list[Decoded], isolate: bool
    ) -> Counter[str]:
        counts: Counter[str] = Counter()
        out: list[Outgoing] = []  # what the batch publishes, written to the outbox at once
        # Pipeline mode sends statements without waiting for each one, so the database works
        # while Python goes on; it waits only where a result is read or a savepoint ends.
        with conn.pipeline(), conn.transaction():
            # Optimistic: one unit of work and one inbox claim for the whole batch. Isolated:
            # each record claims and takes effect in a savepoint of its own, so a failing one
            # rolls back alone, claim included, and a later record of the same document (a
            # corrected re-send) can still take effect. Records of keys that wait in retry are
            # put in order one by one, so they always go the isolated way, as do redeliveries
            # of records dead-lettered before (skipped there before any claim).
            queues = parking.Queues(conn, self.service.name, [r for r, _, _ in decoded])
            if not isolate and (
                not queues.empty()
                or any(parking.ticket_of(r) or queues.dead_before(r) for r, _, _ in decoded)
            ):
                raise _Queued
            uow = None if isolate else self.service.bind(conn)
            events = [e for _, e, _ in decoded if e]
            # Each event's trace as its record carries it: its span starts only after the claim.
            traces = [telemetry.trace_id_of(r.headers) for r, e, _ in decoded if e]
            claim = (
                inbox.Claim() if isolate else inbox.claim(conn, self.service.name, events, traces)
            )
            fresh, conflicts = claim.fresh, claim.conflicts
            settled = dead_letter_index.Settled(self.service.name)  # replayed letters done
            for record, event, error in decoded:
                if event is None:
                    assert error is not None
                    ticket = queues.carried(record)
                    outcome = self._fail(
                        record, None, error, "VALUE_CONVERTER", out, queues, ticket
                    )
                    counts[outcome] += 1
                elif not isolate and event.event_id in conflicts:
                    # Its document took effect with other content: a dead letter, at once
                    # (each copy, as each copy of a failing record is on the isolated path).
                    conflict = conflicts[event.event_id]
                    counts[self._fail(record, event, conflict, "TASK_PUT", out, queues)] += 1
                elif not isolate and event.event_id not in fresh:
                    counts["duplicate"] += 1
                    settled.note(record, "duplicate")
                else:
                    fresh.discard(event.event_id)  # a second copy in this batch is a duplicate
                    counts[self._handle(conn, record, event, uow, queues, out, settled)] += 1
                if len(out) >= CHUNK:  # keep the database busy while Python goes on
                    _flush(uow)
                    # outbox.add, + the dead-letter index
                    _outside_savepoints(dead_letter_index.publish, conn, self.service.name, out)
                    out = []
            _flush(uow)
            _outside_savepoints(dead_letter_index.publish, conn, self.service.name, out)
            _outside_savepoints(settled.write, conn)
            outbox.notify(conn, self.service.name)
        return counts

    def _decode(self, record: Record) -> Event:
        topic = record.topic
        if topic not in self.service.handlers:  # a retry: decode as the topic it came from
            topic = record.header_text(headers.RETRY_TOPIC) or topic
        try:
            return self.serde.decode(topic, record.value)
        except pydantic.ValidationError as exc:
            raise InvalidEvent(f"event does not match its type: {exc}") from exc
        except KeyError as exc:
            raise PermanentError(f"no handler or schema for topic {topic!r}") from exc

    def _handle(
        self,
        conn: psycopg.Connection,
        record: Record,
        event: Event,
        uow: Any,
        queues: parking.Queues,
        out: list[Outgoing],
        settled: dead_letter_index.Settled,
    ) -> str:
        """Apply one record: inside the batch's unit of work, or — when `uow` is None — in its
        key's order, in a savepoint with a unit of work of its own."""
        place = None if uow is not None else parking.place(record, queues, self.service.name)
        if place is not None and place.outcome is not None:
            if place.parked is not None:
                out.append(place.parked)
            return place.outcome
        with telemetry.process_span(record, self.service.name, str(event.event_id)):
            if place is None:
                out += self._take_effect(event, uow)
                settled.note(record, "processed")
                return "processed"
            try:
                with conn.transaction():  # a savepoint: a failure rolls back this record only
                    claim = inbox.claim(conn, self.service.name, [event])
                    if event.event_id in claim.conflicts:
                        raise claim.conflicts[event.event_id]  # dead-lettered below
                    if not claim.fresh:
                        queues.done(record, place.ticket)
                        settled.note(record, "duplicate")
                        return "duplicate"
                    own = self.service.bind(conn)
                    published = self._take_effect(event, own)
                    _flush(own)
                    queues.done(record, place.ticket)
                out += published
                settled.note(record, "processed")
                return "processed"
            except Exception as exc:
                if db.is_outage(exc):
                    raise
                error = classify(exc)
                return self._fail(record, event, error, "TASK_PUT", out, queues, place.ticket)

    def _take_effect(self, event: Event, uow: Any) -> list[Outgoing]:
        published = self.service.handlers[event.TOPIC](event, uow)
        trace_headers = telemetry.inject()
        return [self.serde.outgoing(e, trace_headers) for e in published]

    def _fail(
        self,
        record: Record,
        event: Event | None,
        error: FinsyncError,
        stage: str,
        out: list[Outgoing],
        queues: parking.Queues | None = None,
        ticket: parking.Ticket | None = None,
    ) -> str:
        """Back through retry, in its key's queue, while its budget lasts; else a dead letter."""
        now = self.clock_ms()
        due = failures.retry_due(record, error, self.policy, now)
        if due is not None:
            extra: Headers = []
            if queues is not None and record.key is not None:
                queued = (
                    queues.again(record.key, ticket, due) if ticket else queues.join(record, due)
                )
                if queued is None:  # this very record is queued already: a redelivery
                    return "duplicate"
                extra = queued.headers
            message = failures.retry(record, self.service.name, due, now, extra)
        else:
            if queues is not None and not queues.dead_lettered(record, ticket):
                return "duplicate"  # a redelivery of a record that is a dead letter already
            message = failures.dead_letter(
                record,
                error,
                service=self.service.name,
                stage=stage,
                now_ms=now,
                trace_id=telemetry.current_trace_id(),
                event_id=str(event.event_id) if event else None,
            )
        out.append(message)
        outcome = "retried" if due is not None else "dead-lettered"
        log.log(
            logging.INFO if outcome == "retried" else logging.WARNING,
            "%s %s record %d:%d (%s)",
            outcome,
            record.topic,
            record.partition,
            record.offset,
            type(error).__name__,
            extra={
                "event_id": str(event.event_id) if event else None,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error_class": type(error).__name__,
            },
        )
        return outcome
