"""Dead letters on their topics: read `<service>.dlq` (to backfill the dead-letter index, and
for tools that read topics), and the message a replay sends.

Replaying sends the original key, value and publisher headers to `<service>.retry` (same key,
so the same partition), due at once and with a fresh set of attempts. The inbox makes a
second replay of the same dead letter a no-op. Listing, filtering and replaying work on the
dead-letter index (finsync.ops), never on a scan of these topics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from finsync.contract.topics import dlq_topic, retry_topic
from finsync.runtime import clients
from finsync.runtime import headers as h
from finsync.runtime.failures import Origin
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
    the service can settle that letter once the record takes effect.

    The message `failures.as_retry` makes of the letter with no attempts and no first failure,
    built directly: a replay builds tens of thousands, and the general path costs several times
    more per message (tests/unit/test_failure_routing.py holds the two equal)."""
    retry: Headers = [
        (h.RETRY_ATTEMPTS, b"0"),
        (h.RETRY_NOT_BEFORE, b"0"),
        (h.RETRY_TOPIC, origin.topic.encode()),
        (h.RETRY_PARTITION, str(origin.partition).encode()),
        (h.RETRY_OFFSET, str(origin.offset).encode()),
        (h.RETRY_TIMESTAMP, str(origin.timestamp_ms).encode()),
    ]
    publisher = [(k, v) for k, v in headers if not k.startswith(h.RUNTIME_PREFIXES)]
    replayed = [(k, v) for k, v in headers if k.startswith(h.REPLAY_PREFIX)]
    replay: Headers = [
        (h.REPLAY_ID, replay_id.encode()),
        (h.REPLAY_DEAD_LETTER, str(letter_id).encode()),
    ]
    return Outgoing(retry_topic(service), key, value, publisher + retry + replayed + replay)
