"""Heartbeats: each consumer and relay says it is alive, and how it is doing, in
`finsync.service_instances`, from a daemon thread of its own with its own autocommit connection.

The loop that owns the numbers hands them over with `report()`, which only stores them; the
thread writes them every few seconds, and soon after an urgent report (a new assignment). A
database that is down or slow costs the service nothing: the thread fails quietly (logged at
debug) and tries again, and a clean stop waits for it a moment at most. A row not seen for
GONE_AFTER_SECONDS is an instance that is gone; heartbeats prune rows not seen for a day.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from finsync.runtime import db
from finsync.settings import Settings

log = logging.getLogger("finsync.heartbeat")

EVERY_SECONDS = 5.0
GONE_AFTER_SECONDS = 30  # a row older than this is an instance that is gone
PRUNE_AFTER_DAYS = 1
RATE_WINDOW_SECONDS = 60.0
STOP_WAIT_SECONDS = 2.0  # how long a clean stop waits for the row to be removed
_PRUNE_EVERY_SECONDS = 3600.0
_MIN_GAP_SECONDS = 1.0
COMMITTED_TIMEOUT_SECONDS = 2.0  # once per assignment, in the consumer loop
# What a consumer counts each record as; a relay counts "published" and "refused".
OUTCOMES = ("processed", "duplicate", "retried", "dead-lettered")

_UPSERT = """
INSERT INTO finsync.service_instances AS s
    (instance_id, service, role, host, pid, started_at, seen_at, active, partitions, counts, rates)
VALUES (%(id)s, %(service)s, %(role)s, %(host)s, %(pid)s, %(started_at)s, now(), %(active)s,
        %(partitions)s::jsonb, %(counts)s::jsonb, %(rates)s::jsonb)
ON CONFLICT (instance_id) DO UPDATE SET
    seen_at = now(), active = excluded.active, partitions = excluded.partitions,
    counts = excluded.counts, rates = excluded.rates
"""


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    lag: int | None  # None: no position or watermark known yet
    paused: bool


@dataclass(frozen=True)
class Beat:
    """What an instance reports: cumulative counts by outcome, and a consumer's partitions."""

    counts: Mapping[str, int] = field(default_factory=dict)
    partitions: Sequence[PartitionState] = ()
    active: bool = True


class Positions:
    """Where a consumer stands on each assigned partition, for its lag: its position, or,
    until it has consumed from the partition (its position is unknown until then), the
    group's committed offset, read once per assignment so an idle partition shows its lag."""

    def __init__(self) -> None:
        self._committed: dict[tuple[str, int], int] = {}

    def forget(self) -> None:
        """On a new assignment: another member may have committed meanwhile."""
        self._committed.clear()

    def states(
        self, consumer: Consumer, paused: Container[tuple[str, int]]
    ) -> list[PartitionState]:
        assigned = consumer.assignment()
        if not assigned:
            return []
        positions = consumer.position(assigned)
        unknown = [
            TopicPartition(tp.topic, tp.partition)
            for tp in positions
            if tp.offset < 0 and (tp.topic, tp.partition) not in self._committed
        ]
        if unknown:
            try:
                for tp in consumer.committed(unknown, timeout=COMMITTED_TIMEOUT_SECONDS):
                    self._committed[(tp.topic, tp.partition)] = tp.offset
            except KafkaException as exc:  # asked again at the next beat
                log.debug("committed offsets not read: %s", exc)
        out = []
        for tp in positions:
            part = (tp.topic, tp.partition)
            offset = tp.offset if tp.offset >= 0 else self._committed.get(part, -1)
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            lag = max(high - offset, 0) if offset >= 0 and high >= 0 else None
            out.append(PartitionState(tp.topic, tp.partition, lag, part in paused))
        return out


class RateWindow:
    """Per-second rates by outcome over the last `seconds`, from cumulative counts sampled now
    and then: (newest - oldest sample in the window) / the time between them."""

    def __init__(self, seconds: float = RATE_WINDOW_SECONDS) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, at: float, counts: Mapping[str, int]) -> dict[str, float]:
        """Record the counts at monotonic time `at`; returns the rates over the window."""
        self._samples.append((at, dict(counts)))
        # Keep one sample at or before the window's start, so the window is covered whole.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.seconds:
            self._samples.popleft()
        first_at, first = self._samples[0]
        elapsed = at - first_at
        if elapsed <= 0:
            return {}
        return {
            outcome: max(n - first.get(outcome, 0), 0) / elapsed for outcome, n in counts.items()
        }


def instance_id() -> str:
    """Readable where it runs, and unique per start even where pids repeat (containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# A loop that has not reported for this long is hung (stuck in a statement, a delivery): its
# row stops being refreshed, so the console shows the instance as gone, not as up.
HUNG_AFTER_SECONDS = 30.0


class Heartbeat:
    def __init__(
        self,
        settings: Settings,
        service: str,
        role: str,
        every_seconds: float = EVERY_SECONDS,
    ) -> None:
        self.settings = settings
        self.service = service
        self.role = role
        self.every = every_seconds
        self.id = instance_id()
        self.started_at = datetime.now(UTC)
        self._beat = Beat()
        self._reported = time.monotonic()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._rates = RateWindow()
        self._conn: psycopg.Connection | None = None
        self._next_prune = 0.0
        self._remove_on_stop = True
        self._thread = threading.Thread(target=self._run, name=f"{role}-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def report(self, beat: Beat, urgent: bool = False) -> None:
        """Hand over the latest numbers; the heartbeat thread writes them, never the caller:
        at its next beat, or as soon as it may if `urgent` (a change people should see)."""
        with self._lock:
            self._beat = beat
            self._reported = time.monotonic()
        if urgent:
            self._wake.set()

    def stop(self, remove: bool = True) -> None:
        """Stop beating and, on a clean stop, remove the row (an instance stopped on purpose
        is not gone), waiting a moment at most. Without `remove` the row stays, to go stale."""
        self._remove_on_stop = remove
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_SECONDS)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._safely(self._write)
            # At most one write a second, however often urgent reports come.
            self._stop.wait(min(_MIN_GAP_SECONDS, self.every))
            self._wake.wait(max(self.every - _MIN_GAP_SECONDS, 0))
        if self._remove_on_stop:
            self._safely(self._remove)
        self._close()

    def _safely(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # the database's trouble must never become the service's
            log.debug("heartbeat of %s %s not written: %s", self.service, self.role, exc)
            self._close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings, autocommit=True)
        return self._conn

    def _write(self) -> None:
        with self._lock:
            beat, reported = self._beat, self._reported
        if time.monotonic() - reported > HUNG_AFTER_SECONDS:
            return  # its loop has not reported for long: let the row go stale, so it shows
        rates = self._rates.add(time.monotonic(), beat.counts)
        conn = self._connection()
        conn.execute(
            _UPSERT,
            {
                "id": self.id,
                "service": self.service,
                "role": self.role,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self.started_at,
                "active": beat.active,
                "partitions": json.dumps([asdict(p) for p in beat.partitions]),
                "counts": json.dumps(dict(beat.counts)),
                "rates": json.dumps({k: round(v, 3) for k, v in rates.items()}),
            },
        )
        if time.monotonic() >= self._next_prune:
            conn.execute(
                "DELETE FROM finsync.service_instances "
                "WHERE seen_at < now() - make_interval(days => %s)",
                (PRUNE_AFTER_DAYS,),
            )
            self._next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS

    def _remove(self) -> None:
        self._connection().execute(
            "DELETE FROM finsync.service_instances WHERE instance_id = %s", (self.id,)
        )

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken one may fail to close: gone anyway
                conn.close()
