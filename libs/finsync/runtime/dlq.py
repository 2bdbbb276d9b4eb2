"""Dead letters on their topics: read `<service>.dlq` (to backfill the dead-letter index, and
for tools that read topics), and the message a replay sends.

Replaying sends the original key, value and publisher headers to `<service>.retry` (same key,
so the same partition), due at once and with a fresh set of attempts. The inbox makes a
second replay of the same dead letter a no-op. Listing, filtering and replaying work on the
dead-letter index (finsync.ops), never on a scan of these topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from finsync.contract.topics import dlq_topic
from finsync.runtime import clients
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


def replay_message(
    service: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    origin: Origin,
    replay_id: str,
    letter_id: int,
) -> Outgoing:
    """A dead letter as a retry that is due now: original bytes and publisher `headers`, its
    origin kept, attempts reset, and the replay's id and the indexed letter's id in headers, so
    the service can settle that letter once the record takes effect."""
    record = Record(dlq_topic(service), 0, 0, origin.timestamp_ms, key, value, headers)
    replay: Headers = [
        (h.REPLAY_ID, replay_id.encode()),
        (h.REPLAY_DEAD_LETTER, str(letter_id).encode()),
    ]
    fresh = replace(origin, attempts=0, first_failure_ms=None)
    return as_retry(record, service, fresh, 0, 0, None, extra=replay)
