"""The ERP port: what services may ask of the system of record for the books."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from finsync.contract.events import PaymentStatus
from finsync.domain.accounting import Journal


@dataclass(frozen=True)
class OpenItem:
    """An invoice in accounts receivable."""

    invoice_id: str
    invoice_number: str
    account_id: str
    legal_entity: str
    currency: str
    issued_on: date
    due_on: date
    original_amount: Decimal
    open_amount: Decimal


@dataclass(frozen=True)
class Customer:
    account_id: str  # the CRM account that creates it: its idempotency key
    name: str
    country: str
    currency: str
    legal_entity: str
    tax_id: str | None
    email_domain: str | None
    parent_customer_id: str | None


@dataclass(frozen=True)
class CashApplication:
    """What a settled payment does to AR: applied to the invoice, written off (a short payment
    within tolerance), and left on the customer as unapplied cash."""

    payment_id: str  # its idempotency key
    account_id: str
    customer_id: str
    invoice_id: str | None
    legal_entity: str
    currency: str
    amount: Decimal
    fee_amount: Decimal
    applied_amount: Decimal
    written_off_amount: Decimal
    unapplied_amount: Decimal
    status: PaymentStatus
    settled_at: datetime
    method: str
    gateway_reference: str

    @property
    def settles(self) -> Decimal:
        """How much the invoice's open amount goes down."""
        return self.applied_amount + self.written_off_amount


@dataclass(frozen=True)
class Posted:
    document_id: str
    journal_entry_id: str
    posted_at: datetime


class Erp(Protocol):
    def post_invoice(self, item: OpenItem, journal: Journal) -> Posted:
        """Open the AR item and post its journal. The ERP rejects a second post of the same
        invoice (its idempotency key)."""

    def post_credit_memo(
        self, credit_memo_id: str, invoice_id: str, amount: Decimal, journal: Journal
    ) -> Posted:
        """Reduce the invoice's open amount and post the journal; rejects a second post."""

    def open_item(self, invoice_id: str, lock: bool = False) -> OpenItem | None:
        """The invoice's AR item, None if the invoice is not posted (yet). With `lock`, no other
        transaction can change it until this one ends (cash application reads, then writes)."""

    def create_customer(self, customer: Customer) -> str:
        """Create the customer; returns its id. Rejects a second create for the same CRM
        account."""

    def update_customer(self, customer_id: str, customer: Customer) -> None:
        """Change the customer's details."""

    def apply_payment(self, application: CashApplication, journal: Journal) -> Posted:
        """Record the payment, reduce the invoice's open amount by what it settles, and post the
        journal. Rejects a second application of the same payment."""

    def flush(self) -> None:
        """Send buffered writes; the runtime calls it before the transaction commits."""
