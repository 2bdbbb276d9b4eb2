"""What the ERP port speaks of refunds and disputes: the payment they take from, the invoices
it paid, and how each is booked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class BookedPayment:
    """A settled payment as a refund or a dispute finds it."""

    payment_id: str
    account_id: str  # CRM account of the payer
    legal_entity: str
    currency: str
    amount: Decimal
    unapplied_open: Decimal  # unapplied cash it still has
    review_reason: str | None  # set: its cash waits for a review, no refund may use it


@dataclass(frozen=True)
class PaidInvoice:
    """Cash a payment applied to an invoice, that a refund or a lost dispute may take back by
    reopening the invoice: what it applied less what was taken back before."""

    payment_id: str
    invoice_id: str
    amount: Decimal
    credited: bool  # the invoice has a credit memo: it is not reopened


@dataclass(frozen=True)
class Reversal:
    """What a refund or a lost dispute takes back from one payment: unapplied cash it still has
    (invoice_id None), or cash it applied to the invoice, which reopens."""

    payment_id: str
    invoice_id: str | None
    amount: Decimal


@dataclass(frozen=True)
class RefundBooking:
    refund_id: str  # its idempotency key
    payment_id: str | None
    account_id: str
    legal_entity: str
    currency: str
    amount: Decimal
    fee_amount: Decimal
    from_credit: Decimal  # off the payer's customer credit balance (2400)
    reversals: tuple[Reversal, ...]  # off unapplied cash (2100) and paid invoices (1200)
    refunded_at: datetime
    gateway_reference: str

    @property
    def from_unapplied(self) -> Decimal:
        return sum((r.amount for r in self.reversals if r.invoice_id is None), Decimal(0))

    @property
    def from_invoices(self) -> Decimal:
        return sum((r.amount for r in self.reversals if r.invoice_id is not None), Decimal(0))


@dataclass(frozen=True)
class Dispute:
    """A dispute as the ERP keeps it."""

    dispute_id: str
    payment_id: str
    account_id: str
    legal_entity: str
    currency: str
    amount: Decimal
    fee_amount: Decimal
    status: str  # OPENED, WON or LOST
    opened_at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class DisputeLoss:
    """How a lost dispute is booked: by policy `reopen`, what it takes back from the payment
    and what is written off because the payment had nothing left; by `write-off`, all of it
    written off."""

    policy: str
    reversals: tuple[Reversal, ...]
    written_off: Decimal
