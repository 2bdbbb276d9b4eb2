"""What a service is: a name, a handler per topic, and how its handlers reach downstream systems."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg

from finsync.contract.events import Event

U = TypeVar("U")

# A handler gets the typed event and its dependencies bound to the batch transaction, and
# returns the events it publishes; the runtime writes them to the outbox in that transaction.
Handler = Callable[[Any, U], Sequence[Event]]


@dataclass(frozen=True)
class Service(Generic[U]):
    name: str  # also the consumer group: renaming it re-consumes everything
    handlers: Mapping[str, Handler[U]]
    # Builds the handlers' dependencies on the batch's connection, once per batch. If they
    # buffer writes, they expose flush(), which the runtime calls before committing.
    bind: Callable[[psycopg.Connection], U]

    @property
    def source(self) -> str:
        """The `source` of the events this service publishes."""
        return f"finsync.{self.name}"
