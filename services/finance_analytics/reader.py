"""Which streams the app reads, and what a record of each counts: its facts, under the key that
makes it count once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finsync.contract.events import Event, InvoicePosted, OpportunityClosed, PaymentApplied
from finsync.contract.topics import ANALYTICS, ANALYTICS_READS, SERVICES, dlq_topic

from . import facts
from .facts import Fact

EVENT_TOPICS = ANALYTICS_READS  # OpportunityClosed, InvoicePosted, PaymentApplied
DEAD_LETTER_TOPICS = {dlq_topic(s): s for s in SERVICES}


@dataclass(frozen=True)
class Streams:
    """What the app reads, as which group, and whether it publishes; a bench points it at
    topics of its own."""

    group: str = ANALYTICS  # finsync run takes FINSYNC_ANALYTICS_GROUP
    # The topic read -> the contract topic of its records (which schema and rule apply).
    events: Mapping[str, str] = field(default_factory=lambda: {t: t for t in EVENT_TOPICS})
    # The topic read -> the service whose dead letters it holds.
    dead_letters: Mapping[str, str] = field(default_factory=lambda: dict(DEAD_LETTER_TOPICS))
    publish: bool = True


def count_key(event: Event) -> str:
    """A deal is booked once, whatever event ids it is re-sent under; what finsync published
    counts once per event_id (a relay that publishes again keeps it)."""
    if isinstance(event, OpportunityClosed):
        return event.document_key
    return f"{event.TOPIC}:{event.event_id}"


def facts_of(event: Event) -> list[Fact]:
    if isinstance(event, OpportunityClosed):
        return facts.of_opportunity(event)
    if isinstance(event, InvoicePosted):
        return facts.of_posting(event)
    if isinstance(event, PaymentApplied):
        return facts.of_application(event)
    raise ValueError(f"finance-analytics does not read {event.TOPIC}")


def dead_letter_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"  # each record of a dead-letter topic is one letter
