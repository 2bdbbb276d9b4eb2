"""A realistic order-to-cash scenario, seedable, and what the run must end with.

CRM publishes accounts and closed-won opportunities (`crm`, `opportunities`), the reference
billing system runs its invoices and issues a few credit memos (`billing`), and the payment
gateway settles payments (`gateway`); `stages` plays them through the running services. Every
source also sends a few malformed events.

The same seed gives the same scenario; ids carry the run's tag so runs do not collide.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from finsync.contract.events import AccountUpserted, Event, OpportunityClosed
from finsync.runtime.messages import Outgoing

UNREADABLE = b'{"this is": "JSON, not Avro"}'  # a publisher that forgot the serializer


@dataclass
class Expected:
    """What the run must end with."""

    linked: dict[str, str] = field(default_factory=dict)  # duplicate -> account it matches
    versions: dict[str, int] = field(default_factory=dict)  # synced account -> its last version
    activated: set[str] = field(default_factory=set)  # opportunities with a subscription
    dead: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> key -> error
    payments: set[str] = field(default_factory=set)  # payments that take effect

    def dead_letter(self, service: str, key: str, error: str) -> None:
        self.dead.setdefault(service, {})[key] = error


@dataclass
class Scenario:
    """One run: what CRM publishes, and what the run must end with."""

    seed: int
    tag: str
    as_of: date
    rng: random.Random
    crm: list[Event | Outgoing]  # what CRM publishes first, in order
    late_accounts: list[AccountUpserted]  # published after their opportunities
    opportunities: list[OpportunityClosed]  # the valid ones
    orphan_parent: AccountUpserted  # never published by the run: its child waits in vain
    expected: Expected

    def like(self) -> str:
        """SQL LIKE pattern matching the ids of this run."""
        return f"%-{self.tag}-%"

    def owns(self, key: str | None) -> bool:
        """Whether a business id (a message key) is one of this run's."""
        return f"-{self.tag}-" in (key or "")


def envelope(source: str, correlation: str) -> dict[str, object]:
    """The envelope fields of a new event from `source`."""
    return {
        # Random, not seeded: the seed repeats a scenario's documents, but each publication is
        # a new event. (Documents repeated under the same tag still take effect once.)
        "event_id": uuid.uuid4(),
        "occurred_at": datetime.now(UTC),
        "source": source,
        "correlation_id": correlation,
    }
