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
    `rate_per_second`, and record who replayed what, when, and how it went."""
    who = by or getpass.getuser()
    producer = None if dry_run else clients.producer(settings, "finsync-dlq-replay")
    results: list[ReplayResult] = []
    interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
    for i, letter in enumerate(letters):
        started = time.monotonic()
        message = replay_message(letter, str(uuid.uuid4()))
        outcome = "would-replay"
        if producer is not None:
            outcome = _send(producer, message)
        results.append(ReplayResult(letter, outcome))
        progress(i + 1)
        pause = interval - (time.monotonic() - started)
        if pause > 0 and i + 1 < len(letters):
            time.sleep(pause)
    _audit(settings, who, results, dry_run)
    return results


def _send(producer: Producer, message: Outgoing) -> str:
    """Produce one message and wait for Kafka's answer, so the audit tells the truth."""
    try:
        clients.send(producer, [message], timeout=30)
    except clients.DeliveryError as exc:
        return f"failed: {exc}"
    return "replayed"


def _audit(settings: Settings, who: str, results: list[ReplayResult], dry_run: bool) -> None:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO finsync.replay_audit (replayed_by, service, dlq_topic, dlq_partition, "
            "dlq_offset, message_key, error_class, target_topic, dry_run, outcome) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    who,
                    r.letter.service,
                    r.letter.record.topic,
                    r.letter.record.partition,
                    r.letter.record.offset,
                    r.letter.record.key_text,
                    r.letter.error_class,
                    retry_topic(r.letter.service),
                    dry_run,
                    r.outcome,
                )
                for r in results
            ],
        )
