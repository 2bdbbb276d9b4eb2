"""What a lineage is made of (pure dataclasses), the builder that lays its hops out, and the
two query helpers its readers share.

A lineage is an ordered list of hops, each after its parent (depth first), each one document:
a CRM account, an opportunity, a billing subscription, an invoice, its ERP posting, a credit
memo, a payment and what became of its cash. A hop whose document did not take effect says why
(`missing`): waiting in retry, a dead letter, or not received yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString

import psycopg

from finsync.contract.events import (
    AccountUpserted,
    CreditMemoIssued,
    InvoiceIssued,
    OpportunityClosed,
    PaymentSettled,
)
from finsync.contract.gateway_events import DisputeUpdated, PayoutPaid, RefundSettled

FAN_OUT = 50  # children shown per hop; Hop.more counts the rest
MAX_HOPS = 500  # hops in one lineage, however wide the tree

# A document's kind -> the topic it arrives on and the service that takes it in: where its
# inbox rows, retries and dead letters are.
SOURCES: dict[str, tuple[str, str]] = {
    "account": (AccountUpserted.TOPIC, "account-sync"),
    "opportunity": (OpportunityClosed.TOPIC, "subscription-activator"),
    "invoice": (InvoiceIssued.TOPIC, "invoice-poster"),
    "credit-memo": (CreditMemoIssued.TOPIC, "invoice-poster"),
    "payment": (PaymentSettled.TOPIC, "payment-settler"),
    "refund": (RefundSettled.TOPIC, "payment-settler"),
    "dispute": (DisputeUpdated.TOPIC, "payment-settler"),
    "payout": (PayoutPaid.TOPIC, "payment-settler"),
}
KIND_OF_TOPIC = {topic: kind for kind, (topic, _) in SOURCES.items()}


@dataclass(frozen=True)
class EventRef:
    """An event a service took in for the document (its finsync.inbox row)."""

    service: str
    event_id: str
    topic: str
    document_key: str  # '<topic>:<document id>' (':v<version>' for accounts)
    processed_at: datetime
    trace_id: str | None


@dataclass(frozen=True)
class JournalLine:
    account_code: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class JournalRef:
    entry_id: str
    posted_at: datetime
    legal_entity: str
    currency: str
    amount: Decimal  # the sum of its debits
    description: str
    lines: tuple[JournalLine, ...]


@dataclass(frozen=True)
class DeadLetterRef:
    id: int  # finsync.dead_letters.id
    service: str
    error_class: str
    category: str  # permanent | retries-exhausted
    reason: str
    status: str  # open | replayed | resolved
    failed_at: datetime
    trace_id: str | None


@dataclass(frozen=True)
class Waiting:
    """The document waits in its service's retry topic (finsync.parked)."""

    service: str
    since: datetime
    due_at: datetime  # the next attempt of the first record of its key
    queued: int  # records of the key waiting, this one included


@dataclass(frozen=True)
class Missing:
    """Why a document has not taken effect."""

    why: str  # retrying | dead-letter | received | not-received
    detail: str  # one sentence for people
    service: str
    dead_letter: DeadLetterRef | None = None
    waiting: Waiting | None = None


@dataclass
class Hop:
    n: int  # its index in Lineage.hops
    parent: int | None
    kind: str  # account, opportunity, subscription, invoice, posting, credit-memo, payment, ...
    id: str
    state: str  # where the document stands now, in a few words
    at: datetime | None = None  # when it took effect (or arrived)
    amount: Decimal | None = None
    currency: str | None = None
    trace_id: str | None = None
    events: list[EventRef] = field(default_factory=list)
    journals: list[JournalRef] = field(default_factory=list)
    dead_letters: list[DeadLetterRef] = field(default_factory=list)  # newest first
    missing: Missing | None = None  # set when the document did not take effect: why not
    waiting: Waiting | None = None  # a record of the document's key waiting in retry
    more: int = 0  # children left out over the fan-out cap


@dataclass(frozen=True)
class Lineage:
    query: str  # the business id asked for
    kind: str  # what it turned out to be
    hops: list[Hop]  # depth first: each after its parent
    capped: bool  # some children were left out (see Hop.more), or MAX_HOPS was reached

    @property
    def root(self) -> Hop:
        return self.hops[0]

    def children(self, hop: Hop) -> list[Hop]:
        return [h for h in self.hops if h.parent == hop.n]

    def find(self, kind: str, id_: str) -> Hop | None:
        return next((h for h in self.hops if h.kind == kind and h.id == id_), None)


@dataclass
class Source:
    """Where to look for a hop's evidence (not part of the result)."""

    service: str | None = None  # the service that takes the document in
    key: str | None = None  # its Kafka key: dead letters and retries are filed under it
    document_keys: list[str] = field(default_factory=list)  # its inbox rows
    prefix: str | None = None  # inbox rows by prefix: every version of an account
    journal_ids: list[str] = field(default_factory=list)
    took_effect: bool = True  # False: say why not
    trace_hint: str | None = None  # a trace id known without the inbox (a traceparent)


class Builder:
    """Adds hops in depth-first order, each document once, within the caps."""

    def __init__(self, fan_out: int = FAN_OUT, max_hops: int = MAX_HOPS) -> None:
        self.fan_out = fan_out
        self.max_hops = max_hops
        self.hops: list[Hop] = []
        self.sources: list[Source] = []
        self.capped = False
        self._seen: set[tuple[str, str]] = set()

    def room(self) -> bool:
        """False once MAX_HOPS hops are laid out: the lineage is then capped."""
        if len(self.hops) < self.max_hops:
            return True
        self.capped = True
        return False

    def add(
        self,
        parent: int | None,
        kind: str,
        id_: str,
        state: str,
        source: Source | None = None,
        at: datetime | None = None,
        amount: Decimal | None = None,
        currency: str | None = None,
    ) -> int:
        """Append a hop and where its evidence is; returns its index."""
        hop = Hop(len(self.hops), parent, kind, id_, state, at, amount, currency)
        self.hops.append(hop)
        self.sources.append(source or Source())
        self._seen.add((kind, id_))
        return hop.n

    def seen(self, kind: str, id_: str) -> bool:
        return (kind, id_) in self._seen

    def left_out(self, parent: int, total: int, shown: int) -> None:
        """Note children over the cap: the parent says how many."""
        if total > shown:
            self.hops[parent].more += total - shown
            self.capped = True


def source_of(kind: str, id_: str, took_effect: bool = True) -> Source:
    """The service, key and inbox rows of a document of this kind."""
    topic, service = SOURCES[kind]
    if kind == "account":
        return Source(service, id_, prefix=f"{topic}:{id_}:v", took_effect=took_effect)
    keys = [f"{topic}:{id_}"]
    if kind == "dispute":  # each status of a dispute is a document of its own
        keys = [f"{topic}:{id_}:{s}" for s in ("OPENED", "WON", "LOST")]
    return Source(service, id_, keys, took_effect=took_effect)


def trace_of_traceparent(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent ('00-<trace id>-<span id>-<flags>')."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        return parts[1]
    return None


Row = tuple[Any, ...]


def one(conn: psycopg.Connection, sql: LiteralString, *params: object) -> Row | None:
    return conn.execute(sql, params).fetchone()


def some(
    b: Builder, conn: psycopg.Connection, parent: int, sql: LiteralString, *params: object
) -> list[Row]:
    """Rows of a children query whose last column is count(*) OVER (), at most the fan-out;
    the parent notes how many were left out."""
    rows = conn.execute(sql, (*params, b.fan_out)).fetchall()
    if rows:
        b.left_out(parent, rows[0][-1], len(rows))
    return rows
