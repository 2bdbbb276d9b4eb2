"""The two shapes messages take inside the runtime: a record consumed, a message to produce."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Record:
    """A consumed Kafka message, detached from the client library."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    def header(self, name: str) -> bytes | None:
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None

    def header_text(self, name: str) -> str | None:
        v = self.header(name)
        return None if v is None else v.decode("utf-8", "replace")

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", "replace")


@dataclass(frozen=True)
class Outgoing:
    """Exact bytes to publish; what the outbox stores and the relay produces."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
