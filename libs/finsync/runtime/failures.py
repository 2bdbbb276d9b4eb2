"""Where a failed record goes: back through `<service>.retry` later, or to `<service>.dlq`.

Pure functions of the record, the error and the clock, so the routing rules are unit-tested.
Both destinations keep the original key, value and publisher headers byte for byte.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from finsync.contract.topics import dlq_topic, retry_topic
from finsync.errors import TransientError
from finsync.runtime import headers as h
from finsync.runtime.messages import Headers, Outgoing, Record

STACK_LIMIT = 4000  # characters of stack trace kept on a dead letter
MESSAGE_LIMIT = 2000  # characters of the reason: a dead letter must stay under Kafka's limit


@dataclass(frozen=True)
class RetryPolicy:
    """A transient failure is retried with capped exponential backoff until `budget_seconds`
    have passed since its first failure: a budget in time, not attempts, so a dependency down
    for an hour costs no dead letters under the default of a day."""

    budget_seconds: float
    base_seconds: float
    max_seconds: float

    def delay_seconds(self, failures: int) -> float:
        """Exponential: base, 2*base, 4*base ... capped."""
        return float(min(self.base_seconds * 2 ** min(failures - 1, 62), self.max_seconds))


@dataclass(frozen=True)
class Origin:
    """Where a record first entered the service, and how often it has failed since."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    attempts: int
    first_failure_ms: int | None

    @classmethod
    def of(cls, record: Record) -> Origin:
        attempts = record.header_text(h.RETRY_ATTEMPTS)
        if attempts is None:  # a first delivery, not a retry
            return cls(record.topic, record.partition, record.offset, record.timestamp_ms, 0, None)
        first = record.header_text(h.RETRY_FIRST_FAILURE)
        return cls(
            topic=record.header_text(h.RETRY_TOPIC) or record.topic,
            partition=int(record.header_text(h.RETRY_PARTITION) or record.partition),
            offset=int(record.header_text(h.RETRY_OFFSET) or record.offset),
            timestamp_ms=int(record.header_text(h.RETRY_TIMESTAMP) or record.timestamp_ms),
            attempts=int(attempts),
            first_failure_ms=int(first) if first else None,
        )


def not_before_ms(record: Record) -> int:
    """When a retry record is due (0 for anything else)."""
    value = record.header_text(h.RETRY_NOT_BEFORE)
    return int(value) if value else 0


def publisher_headers(record: Record) -> Headers:
    return [(k, v) for k, v in record.headers if not h.is_runtime(k)]


def replay_headers(record: Record) -> Headers:
    """What a replay put on a record: kept through its retries and on its next dead letter, so
    the dead-letter index can tell which letter took effect after replay, or failed again."""
    return [(k, v) for k, v in record.headers if k.startswith(h.REPLAY_PREFIX)]


def _text(pairs: list[tuple[str, object]]) -> Headers:
    return [(k, str(v).encode()) for k, v in pairs]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def as_retry(
    record: Record,
    service: str,
    origin: Origin,
    attempts: int,
    due_ms: int,
    first_failure_ms: int | None,
    extra: Headers | None = None,
) -> Outgoing:
    """The record on `<service>.retry`, due at `due_ms`, remembering where it came from."""
    retry = [
        (h.RETRY_ATTEMPTS, attempts),
        (h.RETRY_NOT_BEFORE, due_ms),
        (h.RETRY_TOPIC, origin.topic),
        (h.RETRY_PARTITION, origin.partition),
        (h.RETRY_OFFSET, origin.offset),
        (h.RETRY_TIMESTAMP, origin.timestamp_ms),
    ]
    if first_failure_ms is not None:
        retry.append((h.RETRY_FIRST_FAILURE, first_failure_ms))
    headers = publisher_headers(record) + _text(retry) + replay_headers(record) + (extra or [])
    return Outgoing(retry_topic(service), record.key, record.value, headers)


def retry_due(record: Record, error: BaseException, policy: RetryPolicy, now_ms: int) -> int | None:
    """When a failed record is to be tried again (epoch ms), or None if it goes to the dead
    letters: at once for a permanent failure, once a transient one has spent its budget."""
    if not isinstance(error, TransientError):
        return None
    origin = Origin.of(record)
    first_failure = origin.first_failure_ms or now_ms
    if now_ms - first_failure >= policy.budget_seconds * 1000:
        return None
    return now_ms + int(policy.delay_seconds(origin.attempts + 1) * 1000)


def retry(record: Record, service: str, due_ms: int, now_ms: int, extra: Headers) -> Outgoing:
    """A failed record on its way back through `<service>.retry`, one attempt further."""
    origin = Origin.of(record)
    first_failure = origin.first_failure_ms or now_ms
    return as_retry(record, service, origin, origin.attempts + 1, due_ms, first_failure, extra)


def dead_letter(
    record: Record,
    error: BaseException,
    *,
    service: str,
    stage: str,
    now_ms: int,
    trace_id: str | None,
    event_id: str | None = None,
) -> Outgoing:
    """The record on `<service>.dlq`: original bytes, and why, where from, how long it waited."""
    origin = Origin.of(record)
    failures = origin.attempts + 1
    first_failure = origin.first_failure_ms or now_ms
    error_class = "retries-exhausted" if isinstance(error, TransientError) else "permanent"
    stack = "".join(traceback.format_exception(error))[-STACK_LIMIT:]
    extra = _text(
        [
            (h.ERR_TOPIC, origin.topic),
            (h.ERR_PARTITION, origin.partition),
            (h.ERR_OFFSET, origin.offset),
            (h.ERR_CONNECTOR, service),
            (h.ERR_STAGE, stage),
            (h.ERR_EXCEPTION_CLASS, f"{type(error).__module__}.{type(error).__qualname__}"),
            (h.ERR_EXCEPTION_MESSAGE, str(error)[:MESSAGE_LIMIT]),
            (h.ERR_EXCEPTION_STACKTRACE, stack),
            (h.ERR_TIMESTAMP, origin.timestamp_ms),
            (h.ERR_CONSUMER_GROUP, service),
            (h.ERR_CLASS, error_class),
            (h.ERR_ATTEMPTS, failures),
            (h.ERR_FIRST_FAILURE, _iso(first_failure)),
            (h.ERR_LAST_FAILURE, _iso(now_ms)),
            (h.ERR_WAITED, f"{(now_ms - first_failure) / 1000:.3f}"),
            (h.ERR_TRACE_ID, trace_id or ""),
            *([(h.ERR_EVENT_ID, event_id)] if event_id else []),
        ]
    )
    headers = publisher_headers(record) + extra + replay_headers(record)
    return Outgoing(dlq_topic(service), record.key, record.value, headers)
