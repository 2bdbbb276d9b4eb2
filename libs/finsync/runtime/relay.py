"""The outbox relay: publishes what services committed, in commit order, then marks it sent.

Woken by NOTIFY on commit rather than a slow poll. An idempotent producer keeps per-key
order; a crash after producing and before marking sent re-publishes, and consumers dedupe
by event_id. One relay per service is active at a time (an advisory lock), so order holds.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from finsync.contract.topics import dlq_topic
from finsync.errors import Outage
from finsync.runtime import (
    clients,
    db,
    dead_letter_index,
    faults,
    heartbeat,
    inbox,
    metrics,
    outbox,
    parking,
    telemetry,
)
from finsync.settings import Settings

log = logging.getLogger("finsync.relay")

BATCH = 2000
PRUNE_EVERY_SECONDS = 600


class Relay:
    def __init__(self, service: str, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.producer = clients.producer(settings, f"{service}-relay")
        self.sent = 0
        self.refused = 0
        self._dlq = dlq_topic(service)
        self._wait = 1.0  # seconds before reconnecting after an outage
        self.meters = metrics.RelayMeters(service)
        self._heartbeat: heartbeat.Heartbeat | None = None  # a service's relay only, not drain()
        self._active: bool | None = None

    def run(self, stop: threading.Event) -> None:
        self._heartbeat = heartbeat.Heartbeat(self.settings, self.service, "relay")
        self._beat(active=False)  # before its first write: standing by until it has the lock
        self._heartbeat.start()
        while not stop.is_set():
            try:
                self._run_connected(stop)
            except (Outage, psycopg.Error) as exc:  # its SQL is fixed: any error is the database's
                log.error("relay for %s: %s; retrying in %.0fs", self.service, exc, self._wait)
                stop.wait(self._wait)
                self._wait = min(self._wait * 2, 30.0)
        self.producer.flush(10)
        self._heartbeat.stop()  # a clean stop only: a relay that dies of an error shows as gone
        log.info("relay stopped", extra={"sent": self.sent})

    def _beat(self, active: bool) -> None:
        """Active: this relay holds its service's lock and publishes; else it stands by."""
        if self._heartbeat is not None:
            counts = {"published": self.sent, "refused": self.refused}
            self._heartbeat.report(heartbeat.Beat(counts, active=active), active != self._active)
            self._active = active

    def _run_connected(self, stop: threading.Event) -> None:
        with db.connect(self.settings, autocommit=True) as conn:
            conn.execute(f"LISTEN {outbox.CHANNEL}")
            self._wait = 1.0  # connected: the next outage starts its backoff afresh
            while not self._lock(conn):
                if stop.is_set():
                    return  # never active, so nothing of ours to drain
                log.info("another relay for %s is active; standing by", self.service)
                self._beat(active=False)
                stop.wait(5)
            next_prune = 0.0
            while not stop.is_set():
                sent = self.publish_pending(conn)
                self._beat(active=True)
                if time.monotonic() >= next_prune:
                    self._prune(conn)
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                if sent < BATCH:
                    # Sleep until a commit notifies us; the timeout is only a safety net.
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        pass
            while self.publish_pending(conn) == BATCH:  # drain what was committed before stop
                pass

    def drain(self) -> int:
        """Publish everything committed so far and return: for jobs that publish (the billing
        system's invoice run), not for services. Waits for another active relay to finish."""
        with db.connect(self.settings, autocommit=True) as conn:
            while not self._lock(conn):
                time.sleep(0.5)
            while self.publish_pending(conn) == BATCH:
                pass
            self._prune(conn)
        self.producer.flush(10)
        return self.sent

    def _lock(self, conn: psycopg.Connection) -> bool:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('finsync.relay'), hashtext(%s))", (self.service,)
        ).fetchone()
        return bool(row and row[0])

    def publish_pending(self, conn: psycopg.Connection) -> int:
        """Publish the next batch; returns how many messages it held. What Kafka accepted is
        marked sent, what it will never accept is marked failed, so neither is sent again;
        anything else (Kafka unreachable) is an outage, and only that part is tried again."""
        batch = outbox.pending(conn, self.service, BATCH)
        if not batch:
            return 0
        messages = [item.message for item in batch]
        spans = telemetry.send_spans(messages)
        delivered = clients.deliveries(self.producer, messages)
        outcomes = [d.error for d in delivered]
        errors = [None if err is None else err.name() for err in outcomes]
        telemetry.end_send_spans(spans, errors)
        self.meters.sent(messages, errors)
        faults.pause_at(faults.BEFORE_MARK_SENT)
        sent = [item.id for item, err in zip(batch, outcomes, strict=True) if err is None]
        letters = [  # where Kafka put each dead letter, for the dead-letter index
            (item.id, d.partition, d.offset)
            for item, d in zip(batch, delivered, strict=True)
            if d.error is None and item.message.topic == self._dlq
        ]
        outbox.mark_sent(conn, sent)
        if letters:
            self._stamp(conn, letters)
        self.sent += len(sent)
        self.meters.published.add(len(sent), {"service": self.service})
        refused = [
            (item, err)
            for item, err in zip(batch, outcomes, strict=True)
            if err is not None and err.code() in clients.REJECTED
        ]
        for item, err in refused:
            log.error(
                "Kafka refused outbox message %d for %s for good (%s); it is kept in "
                "finsync.outbox with this error and not sent again",
                item.id,
                item.message.topic,
                err.str(),
                extra={"outbox_id": item.id, "topic": item.message.topic},
            )
        outbox.mark_failed(conn, [(item.id, err.str()) for item, err in refused])
        self.refused += len(refused)
        unanswered = [
            err for err in outcomes if err is not None and err.code() not in clients.REJECTED
        ]
        if unanswered:
            raise Outage(f"Kafka did not take {len(unanswered)} messages: {unanswered[0].str()}")
        return len(batch)

    def _stamp(self, conn: psycopg.Connection, letters: list[tuple[int, int, int]]) -> None:
        """Where Kafka put the dead letters, for the index. Only a convenience: failing here
        must not undo `mark_sent` (that would send the whole batch again), and `finsync dlq
        reindex` finds the places it missed."""
        try:
            dead_letter_index.stamp(conn, letters)
        except psycopg.errors.OperationalError as exc:
            if db.is_outage(exc):
                raise
            log.warning(
                "could not note where %d dead letter(s) went (%s); `finsync dlq reindex` will",
                len(letters),
                type(exc).__name__,
            )

    def _prune(self, conn: psycopg.Connection) -> None:
        pruned = outbox.prune(conn, self.service)
        expired = inbox.prune(conn, self.service, self.settings.inbox_retention_days)
        forgotten = parking.prune(conn, self.service)
        if pruned or expired or forgotten:
            log.info(
                "pruned %d sent outbox rows, %d inbox rows and %d dead-lettered origins",
                pruned,
                expired,
                forgotten,
            )
