"""Dead letters for SREs: read, filter and replay `<service>.dlq`, with an audit trail.

Replaying sends the original key, value and publisher headers to `<service>.retry` (same key,
so the same partition), due at once and with a fresh set of attempts. The inbox makes a
second replay of the same dead letter a no-op.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
from confluent_kafka import Producer

from finsync.contract.topics import dlq_topic, retry_topic
from finsync.runtime import clients, db
from finsync.runtime import headers as h
from finsync.runtime.failures import Origin, as_retry
from finsync.runtime.messages import Headers, Outgoing, Record
from finsync.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    service: str
    record: Record  # as stored on the dead-letter topic

    def _h(self, name: str) -> str:
        return self.record.header_text(name) or ""

    @property
    def error_class(self) -> str:
        return self._h(h.ERR_EXCEPTION_CLASS).rsplit(".", 1)[-1]

    @property
    def category(self) -> str:
        return self._h(h.ERR_CLASS)

    @property
    def reason(self) -> str:
        return self._h(h.ERR_EXCEPTION_MESSAGE)

    @property
    def original(self) -> tuple[str, int, int]:
        return (
            self._h(h.ERR_TOPIC),
            int(self._h(h.ERR_PARTITION) or -1),
            int(self._h(h.ERR_OFFSET) or -1),
        )

    @property
    def attempts(self) -> int:
        return int(self._h(h.ERR_ATTEMPTS) or 0)

    @property
    def waited_seconds(self) -> float | None:
        """How long it was retried before it became a dead letter (older letters: unknown)."""
        value = self._h(h.ERR_WAITED)
        return float(value) if value else None

    @property
    def failed_at(self) -> datetime | None:
        value = self._h(h.ERR_LAST_FAILURE)
        return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Filter:
    error: str | None = None  # exception class name or category (permanent, retries-exhausted)
    since: datetime | None = None
    until: datetime | None = None
    key: str | None = None

    def __call__(self, letter: DeadLetter) -> bool:
        if self.error and self.error.lower() not in (
            letter.error_class.lower(),
            letter.category.lower(),
        ):
            return False
        if self.key is not None and letter.record.key_text != self.key:
            return False
        at = letter.failed_at
        if self.since and (at is None or at < self.since):
            return False
        return not (self.until and (at is None or at >= self.until))


def read(settings: Settings, service: str) -> Iterator[DeadLetter]:
    """Every dead letter now on the service's topic, oldest first. Reads only: commits nothing."""
    try:
        for record in clients.read(settings, dlq_topic(service)):
            yield DeadLetter(service, record)
    except LookupError:
        raise SystemExit(
            f"dead-letter topic {dlq_topic(service)} does not exist (is {service} a service?)"
        ) from None
    except TimeoutError as exc:
        raise SystemExit(str(exc)) from None


def replay_message(letter: DeadLetter, replay_id: str) -> Outgoing:
    """The dead letter as a retry that is due now: original bytes, origin kept, attempts reset."""
    topic, partition, offset = letter.original
    timestamp = int(letter.record.header_text(h.ERR_TIMESTAMP) or 0)
    origin = Origin(topic, partition, offset, timestamp, attempts=0, first_failure_ms=None)
    replay: Headers = [(h.REPLAY_ID, replay_id.encode())]
    return as_retry(letter.record, letter.service, origin, 0, 0, None, extra=replay)


@dataclass(frozen=True)
class ReplayResult:
    letter: DeadLetter
    outcome: str  # replayed | would-replay | failed: <reason>


def replay(
    settings: Settings,
    letters: list[DeadLetter],
    *,
    by: str | None = None,
    dry_run: bool = False,
    rate_per_second: float = 50.0,
    progress: Callable[[int], None] = lambda _: None,
) -> list[ReplayResult]:
    """Send each dead letter back through its service's retry topic, at most
    `rate_per_second`. Who replays what is recorded before anything is sent, and each
    letter's outcome as soon as it is known, so an interrupted replay leaves its trace."""
    who = by or getpass.getuser()
    replay_id = str(uuid.uuid4())
    producer = None if dry_run else clients.producer(settings, "finsync-dlq-replay")
    results: list[ReplayResult] = []
    interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
    with db.connect(settings, autocommit=True) as conn:
        rows = _record_intent(conn, replay_id, who, letters, dry_run)
        for i, (letter, row) in enumerate(zip(letters, rows, strict=True)):
            started = time.monotonic()
            outcome = "would-replay"
            if producer is not None:
                outcome = _send(producer, replay_message(letter, replay_id))
            _record_outcome(conn, row, outcome)
            results.append(ReplayResult(letter, outcome))
            progress(i + 1)
            pause = interval - (time.monotonic() - started)
            if pause > 0 and i + 1 < len(letters):
                time.sleep(pause)
    return results


def _send(producer: Producer, message: Outgoing) -> str:
    """Produce one message and wait for Kafka's answer, so the audit tells the truth."""
    try:
        clients.send(producer, [message], timeout=30)
    except clients.DeliveryError as exc:
        return f"failed: {exc}"
    return "replayed"


def _record_intent(
    conn: psycopg.Connection, replay_id: str, who: str, letters: list[DeadLetter], dry_run: bool
) -> list[int]:
    """One audit row per letter, outcome 'intended', committed before anything is sent."""
    rows = conn.execute(
        "INSERT INTO finsync.replay_audit (replay_id, replayed_by, service, dlq_topic, "
        "dlq_partition, dlq_offset, message_key, error_class, target_topic, dry_run, outcome) "
        "SELECT %s, %s, s, t, p, o, k, e, r, %s, 'intended' FROM unnest("
        "%s::text[], %s::text[], %s::int[], %s::bigint[], %s::text[], %s::text[], %s::text[]) "
        "WITH ORDINALITY AS x(s, t, p, o, k, e, r, n) ORDER BY n RETURNING id",
        (
            replay_id,
            who,
            dry_run,
            [x.service for x in letters],
            [x.record.topic for x in letters],
            [x.record.partition for x in letters],
            [x.record.offset for x in letters],
            [x.record.key_text for x in letters],
            [x.error_class for x in letters],
            [retry_topic(x.service) for x in letters],
        ),
    ).fetchall()
    return sorted(r[0] for r in rows)


def _record_outcome(conn: psycopg.Connection, row: int, outcome: str) -> None:
    conn.execute(
        "UPDATE finsync.replay_audit SET outcome = %s, finished_at = now() WHERE id = %s",
        (outcome, row),
    )
