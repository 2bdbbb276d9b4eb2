"""The ERP port: what services may ask of the system of record for the books."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from finsync.contract.events import PaymentStatus
from finsync.domain.accounting import TAX_PAYABLE, Journal
from finsync.domain.gl_mapping import RevenueAccounts, TaxAccount
from finsync.domain.revenue import ScheduleRow
from finsync.domain.tax import TaxRounding


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
    # The journal's date in the books: the document's, or the first day of the next open
    # period when the document's period is closed.
    accounting_date: date | None = None


@dataclass(frozen=True)
class CreditHolder:
    """Who holds a customer credit balance: the CRM account of the invoices (as in AR), in
    one legal entity and currency."""

    account_id: str
    legal_entity: str
    currency: str

    @classmethod
    def of(cls, item: OpenItem) -> CreditHolder:
        return cls(item.account_id, item.legal_entity, item.currency)


@dataclass(frozen=True)
class InvoiceLineBooking:
    """What the ERP keeps of a posted invoice line, so a credit memo can reverse what it
    posted: its amount, its accounts, its revenue schedule (empty: revenue at once), and the
    GL mapping rules that chose its accounts (None: the defaults)."""

    line_id: str
    amount: Decimal
    revenue_account: str
    deferred_account: str
    schedule: tuple[ScheduleRow, ...] = ()
    mapping_rule: str | None = None
    tax_account: str = TAX_PAYABLE
    tax_rule: str | None = None


@dataclass(frozen=True)
class LineBalance:
    """A posted invoice line as a credit memo finds it."""

    line_id: str
    amount: Decimal
    credited: Decimal  # by credit memos so far
    revenue_account: str
    deferred_account: str
    unreleased: tuple[ScheduleRow, ...]  # months not recognised yet: amount less cancelled
    mapping_rule: str | None = None  # the rule that chose its revenue accounts
    tax_account: str = TAX_PAYABLE  # where its tax went
    tax_rule: str | None = None

    @property
    def left(self) -> Decimal:
        return self.amount - self.credited


@dataclass(frozen=True)
class LineCredit:
    """What a credit memo takes of one invoice line."""

    line_id: str
    amount: Decimal
    cancelled: tuple[ScheduleRow, ...] = ()  # of unreleased months: never to be released


class Erp(Protocol):
    def post_invoice(
        self, item: OpenItem, journal: Journal, lines: Sequence[InvoiceLineBooking] = ()
    ) -> Posted:
        """Open the AR item, keep its lines and their revenue schedules, and post its journal.
        The ERP rejects a second post of the same invoice (its idempotency key)."""

    def post_credit_memo(
        self,
        credit_memo_id: str,
        invoice_id: str,
        amount: Decimal,
        journal: Journal,
        lines: Sequence[LineCredit] = (),
        to_credit: Decimal = Decimal(0),
    ) -> Posted:
        """Reduce the invoice's open amount by `amount` less `to_credit` and what is left of the
        credited lines, cancel the schedule months the memo takes back, hold `to_credit` as
        the customer's credit balance, and post the journal; rejects a second post. Credit is
        only what is above the open amount: the memo must clear the invoice first."""

    def credit_held(self, holder: CreditHolder) -> Decimal:
        """The customer credit balance the holder has, locked until the transaction ends, so
        two postings never use the same credit. Credit another transaction has not committed
        yet is not held (a later invoice uses it)."""

    def apply_credit(
        self, invoice_id: str, holder: CreditHolder, amount: Decimal, journal: Journal
    ) -> Posted:
        """Use `amount` of the holder's credit on the invoice (posted in this unit of work or
        before): reduce its open amount, record the use, post the journal; at most what
        credit_held() said. The ERP rejects a second use on the same invoice."""

    def lines_to_credit(self, invoice_id: str) -> dict[str, LineBalance]:
        """The invoice's posted lines by line id, with their unreleased schedule months, locked
        until the transaction ends: a recognition run and a credit memo never take the same
        amount."""

    def revenue_accounts(self, legal_entity: str, sku: str) -> RevenueAccounts:
        """The revenue and deferred revenue accounts of a line of this SKU, by the ERP's GL
        mapping, with the rule that chose them. The mapping is read once per unit of work."""

    def tax_account(self, legal_entity: str, rate: Decimal | None) -> TaxAccount:
        """The tax payable account of a line's tax at this rate (None: not sent), by the ERP's
        GL mapping, with the rule that chose it."""

    def tax_rounding(self, legal_entity: str) -> TaxRounding:
        """How the legal entity rounds tax: per line, or once per tax rate per invoice. An entity
        the ERP does not list rounds per line."""

    def open_item(self, invoice_id: str, lock: bool = False) -> OpenItem | None:
        """The invoice's AR item, None if the invoice is not posted (yet). With `lock`, no other
        transaction can change it until this one ends (cash application reads, then writes)."""

    def open_invoices(self, account_ids: Sequence[str]) -> int:
        """How many invoices of these CRM accounts still have an amount open."""

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
