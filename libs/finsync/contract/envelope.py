"""The parts every event shares: its envelope, and the lines documents and journals carry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

E = TypeVar("E", bound="Event")


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TOPIC: ClassVar[str]
    KEY_FIELD: ClassVar[str]  # the business id that is the Kafka key

    event_id: uuid.UUID
    occurred_at: datetime
    source: str
    correlation_id: str
    causation_id: str | None = None

    @property
    def key(self) -> str:
        return str(getattr(self, self.KEY_FIELD))

    @property
    def document_key(self) -> str:
        """The business idempotency key: the same document re-sent under a new event_id
        has the same one, so it takes effect once."""
        return f"{self.TOPIC}:{self.key}"

    def follow(self, cls: type[E], source: str, **fields: object) -> E:
        """A new event caused by this one, in the same business transaction."""
        return cls(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC),
            source=source,
            correlation_id=self.correlation_id,
            causation_id=str(self.event_id),
            **fields,
        )


class Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JournalLine(Line):
    account_code: str
    debit: Decimal
    credit: Decimal
    mapping_rule: str | None = None  # the GL mapping rule that chose the account; None: no rule
    # In the legal entity's functional currency, as booked: transaction amount x rate, rounded
    # to its minor units. None: not converted (yet), or from an earlier version.
    functional_debit: Decimal | None = None
    functional_credit: Decimal | None = None
    rate: Decimal | None = None  # transaction -> functional currency; None: no transaction amount
