"""What one event adds to the figures: the pure rule, one function per topic.

Amounts are the events' own, in the transaction currency, dated by the books (the journal's
accounting date) so they tie to the ERP's documents; bookings by the day the deal closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from finsync.contract.events import (
    DocumentType,
    InvoicePosted,
    JournalLine,
    OpportunityClosed,
    PaymentApplied,
)

RECEIVABLE = "1200"  # accounts receivable
UNAPPLIED = "2100"  # unapplied cash
ZERO = Decimal(0)


class Measure(StrEnum):
    BOOKINGS = "bookings"
    BILLINGS = "billings"
    CREDITS = "credits"
    COLLECTIONS = "collections"
    RECEIVABLE = "receivable"  # a move of one invoice's open amount
    UNAPPLIED = "unapplied"  # a move of unapplied cash
    DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True)
class Fact:
    measure: Measure
    legal_entity: str  # for dead letters: the service
    currency: str  # "" for dead letters
    day: date
    amount: Decimal
    invoice_id: str = ""  # RECEIVABLE: the invoice whose open amount moves
    due_on: date | None = None  # RECEIVABLE, as the invoice posts: when it falls due

    def as_json(self) -> list[str]:
        """Compact and exact (decimals as text), for the app's changelog."""
        return [
            self.measure.value,
            self.legal_entity,
            self.currency,
            self.day.isoformat(),
            str(self.amount),
            self.invoice_id,
            self.due_on.isoformat() if self.due_on else "",
        ]

    @classmethod
    def from_json(cls, v: list[str]) -> Fact:
        return cls(
            Measure(v[0]),
            v[1],
            v[2],
            date.fromisoformat(v[3]),
            Decimal(v[4]),
            v[5],
            date.fromisoformat(v[6]) if v[6] else None,
        )


def _net(lines: list[JournalLine], account: str) -> Decimal:
    """Debits less credits of one account in a journal."""
    return sum((x.debit - x.credit for x in lines if x.account_code == account), ZERO)


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def of_opportunity(e: OpportunityClosed) -> list[Fact]:
    return [
        Fact(
            Measure.BOOKINGS, e.legal_entity, e.currency, _day(e.closed_at), e.total_contract_value
        )
    ]


def of_posting(e: InvoicePosted) -> list[Fact]:
    day = e.accounting_date or _day(e.posted_at)
    ar = _net(e.journal_lines, RECEIVABLE)

    def fact(measure: Measure, amount: Decimal, due_on: date | None = None) -> Fact:
        return Fact(measure, e.legal_entity, e.currency, day, amount, e.invoice_id, due_on)

    if e.document_type is DocumentType.CREDIT_MEMO:
        # What a credit memo takes off its invoice is its receivable credit; the rest, above
        # the open amount, became a customer credit balance (2400) and moves no receivable.
        total = sum((x.debit for x in e.journal_lines), ZERO)
        return [fact(Measure.CREDITS, total), fact(Measure.RECEIVABLE, ar)]
    facts = [fact(Measure.BILLINGS, ar), fact(Measure.RECEIVABLE, ar, e.due_on or day)]
    if e.credit_applied:  # a credit balance used as it posted: a second journal, Cr 1200
        facts.append(fact(Measure.RECEIVABLE, -e.credit_applied))
    return facts


def of_application(e: PaymentApplied) -> list[Fact]:
    day = e.accounting_date or _day(e.occurred_at)
    entity = e.legal_entity or ""
    facts: list[Fact] = []
    if e.applications is not None:
        uses = [(a.invoice_id, a.applied_amount, a.written_off_amount) for a in e.applications]
    elif e.invoice_id and e.applied_amount:  # versions before `applications`
        uses = [(e.invoice_id, e.applied_amount, e.written_off_amount or ZERO)]
    else:
        uses = []
    for invoice_id, applied, written_off in uses:
        facts.append(Fact(Measure.COLLECTIONS, entity, e.currency, day, applied, invoice_id))
        facts.append(
            Fact(Measure.RECEIVABLE, entity, e.currency, day, -(applied + written_off), invoice_id)
        )
    unapplied = -_net(e.journal_lines, UNAPPLIED)  # a liability: credits raise it
    if unapplied:
        facts.append(Fact(Measure.UNAPPLIED, entity, e.currency, day, unapplied))
    return facts


def of_dead_letter(service: str, timestamp_ms: int) -> list[Fact]:
    day = datetime.fromtimestamp(timestamp_ms / 1000, UTC).date()
    return [Fact(Measure.DEAD_LETTERS, service, "", day, Decimal(1))]
