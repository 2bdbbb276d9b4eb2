"""The ERP port: what services may ask of the system of record for the books."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from finsync.contract.events import ApplicationKind, JournalLine, PaymentStatus, PayoutItemType
from finsync.domain.accounting import CASH, TAX_PAYABLE, Journal
from finsync.domain.cash import HeldCash
from finsync.domain.gl_mapping import RevenueAccounts, TaxAccount
from finsync.domain.revenue import ScheduleRow
from finsync.domain.tax import TaxRounding
from finsync.ports.payouts import ClearingDocument, PayoutBooking
from finsync.ports.refunds_disputes import BookedPayment as BookedPayment
from finsync.ports.refunds_disputes import Dispute as Dispute
from finsync.ports.refunds_disputes import DisputeLoss as DisputeLoss
from finsync.ports.refunds_disputes import PaidInvoice as PaidInvoice
from finsync.ports.refunds_disputes import RefundBooking as RefundBooking
from finsync.ports.refunds_disputes import Reversal as Reversal


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
    # Per invoice, what the settlement applied (a remittance names several); empty: the one
    # invoice_id, by applied_amount and written_off_amount.
    applications: tuple[InvoiceApplication, ...] = ()
    earmarks: tuple[Earmark, ...] = ()  # unapplied cash meant for invoices not posted yet
    review_reason: str | None = None  # it named an invoice its payer may not pay
    cash_account: str = CASH  # 1000 Bank, or 1010 Gateway clearing
    # Sent in another currency and applied at the day's cross rate: what the payer sent (the
    # amounts above are converted to the invoices' currency). None: in the invoices' currency.
    cross: CrossCurrency | None = None

    @property
    def settles(self) -> Decimal:
        """How much the invoices' open amounts go down."""
        return self.applied_amount + self.written_off_amount


@dataclass(frozen=True)
class CrossRate:
    """The day's rate from a payment's currency to its invoices', in an entity that applies
    payments across currencies."""

    rate: Decimal
    functional_currency: str


@dataclass(frozen=True)
class CrossCurrency:
    """What a payment applied across currencies was sent as."""

    currency: str
    amount: Decimal
    fee_amount: Decimal
    rate: Decimal  # one unit of `currency` in the invoices' currency
    functional_currency: str  # of the entity that books it


@dataclass(frozen=True)
class InvoiceApplication:
    """What a payment applies to one invoice as it settles."""

    invoice_id: str
    applied_amount: Decimal
    written_off_amount: Decimal

    @property
    def settles(self) -> Decimal:
        return self.applied_amount + self.written_off_amount


@dataclass(frozen=True)
class Earmark:
    """Unapplied cash a payment holds for an invoice not posted yet."""

    invoice_id: str
    amount: Decimal


@dataclass(frozen=True)
class EarmarkedCash:
    """A payment's cash earmarked for an invoice that is posting now, its payment row locked."""

    payment_id: str
    account_id: str  # CRM account of the payer
    customer_id: str
    legal_entity: str
    currency: str
    amount: Decimal  # earmarked, but no more than the payment's unapplied cash left
    unapplied_open: Decimal


@dataclass(frozen=True)
class HeldCashApplication:
    """Unapplied cash of a payment applied to an invoice after it settled."""

    payment_id: str
    invoice_id: str
    kind: ApplicationKind  # EARMARKED or AUTO
    applied_amount: Decimal
    written_off_amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class Posted:
    document_id: str
    journal_entry_id: str
    posted_at: datetime
    # The journal's date in the books: the document's, or the first day of the next open
    # period when the document's period is closed.
    accounting_date: date | None = None
    # The lines as booked, with their functional amounts and rates (an ERP that keeps no
    # functional currency may leave them empty: the journal's lines are what it booked).
    lines: tuple[JournalLine, ...] = ()
    functional_currency: str | None = None

    def booked(self, journal: Journal) -> list[JournalLine]:
        """The lines to publish: as the ERP booked them, else the journal's own."""
        return list(self.lines or journal.lines)


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
        """Record the payment, reduce each invoice's open amount by what it settles, record its
        applications and earmarks, and post the journal. Rejects a second application of the
        same payment."""

    def cross_rate(
        self, legal_entity: str, from_currency: str, to_currency: str, on: date
    ) -> CrossRate | None:
        """The day's rate to apply a payment in `from_currency` to invoices in `to_currency`;
        None if the entity does not apply payments across currencies. Raises
        DependencyNotReady, naming the rate to load, when there is none by that day."""

    def open_item_for_earmark(self, invoice_id: str) -> OpenItem | None:
        """Wait for invoice postings in flight, then the invoice's AR item, locked; None if it
        is still not posted: an earmark made now is seen when it posts."""

    def earmarked_cash(self, invoice_id: str) -> list[EarmarkedCash]:
        """Cash payments earmarked for the invoice (posted in this unit of work) and not applied
        yet, oldest payment first, their payment rows locked."""

    def held_cash(self, holder: CreditHolder) -> list[HeldCash]:
        """The holder's payments (its CRM account paid them) with unapplied cash not earmarked
        and not under review, oldest first, locked. Which holders have any is asked once per
        unit of work: cash committed since waits for the holder's next invoice."""

    def open_items(self, holder: CreditHolder) -> list[OpenItem]:
        """The holder's invoices with an amount open (posted in this unit of work too), locked."""

    def applied_pairs(self, payment_ids: Sequence[str]) -> frozenset[tuple[str, str]]:
        """(payment, invoice) pairs these payments have applications for."""

    def apply_held_cash(self, application: HeldCashApplication, journal: Journal) -> Posted:
        """Apply unapplied cash of the payment (locked by earmarked_cash or held_cash) to the
        invoice: reduce its open amount and the payment's unapplied cash, mark an earmark
        applied, record the application and post the journal."""

    def hold_for_review(self, payment_id: str, reason: str) -> None:
        """Keep the payment's unapplied cash for review: no policy applies it any more."""

    def booked_payment(self, payment_id: str) -> BookedPayment | None:
        """The payment, None if not settled (yet); locked until the transaction ends, so what
        it still has is used once."""

    def unapplied_cash(self, holder: CreditHolder, first: str | None) -> list[tuple[str, Decimal]]:
        """The payer's payments with unapplied cash left, as (payment_id, unapplied_open): the
        payment `first` ahead, then oldest first; none under review. Locked."""

    def paid_invoices(self, payment_id: str) -> list[PaidInvoice]:
        """What the payment applied to invoices and was not taken back, latest application
        first; the invoices locked."""

    def book_refund(self, refund: RefundBooking, journal: Journal) -> Posted:
        """Record the refund, take what it used off the credit balance (at most what
        credit_held() said), the payments' unapplied cash and the invoices (which reopen), and
        post the journal. Rejects a second booking of the same refund."""

    def dispute(self, dispute_id: str) -> Dispute | None:
        """The dispute, None if not opened (yet); locked until the transaction ends."""

    def open_dispute(self, dispute: Dispute, journal: Journal) -> Posted:
        """Record the dispute as OPENED and post the journal; rejects a second opening."""

    def close_dispute(
        self,
        dispute_id: str,
        status: str,
        closed_at: datetime,
        journal: Journal,
        loss: DisputeLoss | None = None,
    ) -> Posted:
        """Record the dispute's outcome (WON, or LOST with how it was booked), take back what
        the loss reverses, and post the journal. Only an OPENED dispute closes."""

    def clearing_documents(
        self, references: Sequence[tuple[PayoutItemType, str]]
    ) -> list[ClearingDocument]:
        """The documents in gateway clearing that payout items name (a payment, refund or
        dispute id by the item's type), each with the payout that took it, if any; locked until
        the transaction ends, so two payouts never take the same one. A dispute has a document
        per movement: opened, and won. Ids the ERP does not hold are left out."""

    def book_payout(self, booking: PayoutBooking, journal: Journal) -> Posted:
        """Record the payout, its items with the documents they matched and its differences,
        and post the journal. Rejects a second booking of the payout, or a document paid out
        twice."""

    def flush(self) -> None:
        """Send buffered writes; the runtime calls it before the transaction commits."""
