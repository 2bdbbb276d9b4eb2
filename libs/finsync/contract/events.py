"""Typed events: one pydantic model per topic, field for field the schemas/<topic>.avsc contract
(the gateway's refunds, disputes and payouts in gateway_events.py, finance-analytics' figures in
kpi_events.py; every event type is listed here, in EVENT_TYPES).

Domain code reads and builds these; serde turns them into Avro and back. Money is Decimal.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from finsync.contract.envelope import E as E
from finsync.contract.envelope import Event as Event
from finsync.contract.envelope import JournalLine as JournalLine
from finsync.contract.envelope import Line as Line
from finsync.contract.gateway_events import DisputeStatus as DisputeStatus
from finsync.contract.gateway_events import DisputeUpdated as DisputeUpdated
from finsync.contract.gateway_events import PayoutDifference as PayoutDifference
from finsync.contract.gateway_events import PayoutDifferenceType as PayoutDifferenceType
from finsync.contract.gateway_events import PayoutItem as PayoutItem
from finsync.contract.gateway_events import PayoutItemType as PayoutItemType
from finsync.contract.gateway_events import PayoutPaid as PayoutPaid
from finsync.contract.gateway_events import PayoutReconciled as PayoutReconciled
from finsync.contract.gateway_events import PayoutStatus as PayoutStatus
from finsync.contract.gateway_events import RefundSettled as RefundSettled
from finsync.contract.kpi_events import FinanceKpis as FinanceKpis


class BillingPeriod(StrEnum):
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUAL = "ANNUAL"
    ONE_TIME = "ONE_TIME"


class SyncAction(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"


class DocumentType(StrEnum):
    INVOICE = "INVOICE"
    CREDIT_MEMO = "CREDIT_MEMO"


class PaymentStatus(StrEnum):
    PAID = "PAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    UNAPPLIED = "UNAPPLIED"


class ApplicationKind(StrEnum):
    """When a payment's cash was applied to an invoice: as it settled, when the invoice it
    was paid in advance for posted, or by the auto-apply policy on a new invoice."""

    SETTLEMENT = "SETTLEMENT"
    EARMARKED = "EARMARKED"
    AUTO = "AUTO"


class InvoiceLine(Line):
    line_id: str
    description: str
    sku: str
    amount: Decimal
    tax_amount: Decimal
    service_period_start: date | None = None
    service_period_end: date | None = None
    tax_rate: Decimal | None = None  # e.g. 0.10; None from publishers that do not send it


class OpportunityLine(Line):
    line_id: str
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    billing_period: BillingPeriod
    start_date: date
    term_months: int


class SubscriptionPhase(Line):
    sku: str
    quantity: Decimal
    unit_price: Decimal
    billing_period: BillingPeriod
    start_date: date
    end_date: date


class AccountUpserted(Event):
    TOPIC = "crm.account-upserted"
    KEY_FIELD = "account_id"
    account_id: str
    name: str
    country: str
    currency: str
    tax_id: str | None = None
    email_domain: str | None = None
    parent_account_id: str | None = None
    legal_entity: str
    version: int

    @property
    def document_key(self) -> str:
        return f"{self.TOPIC}:{self.account_id}:v{self.version}"  # each version is a document


class OpportunityClosed(Event):
    TOPIC = "crm.opportunity-closed"
    KEY_FIELD = "opportunity_id"
    opportunity_id: str
    account_id: str
    closed_at: datetime
    currency: str
    legal_entity: str
    lines: list[OpportunityLine]
    total_contract_value: Decimal


class InvoiceIssued(Event):
    TOPIC = "billing.invoice-issued"
    KEY_FIELD = "invoice_id"
    invoice_id: str
    invoice_number: str
    account_id: str
    subscription_id: str | None = None
    legal_entity: str
    currency: str
    issued_on: date
    due_on: date
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


class CreditMemoIssued(Event):
    TOPIC = "billing.credit-memo-issued"
    KEY_FIELD = "credit_memo_id"
    credit_memo_id: str
    invoice_id: str
    account_id: str
    legal_entity: str
    currency: str
    issued_on: date
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


class Allocation(Line):
    """Part of a payment meant for one invoice: a remittance line, or cash earmarked for an
    invoice not posted yet."""

    invoice_id: str
    amount: Decimal


class Application(Line):
    """One use of a payment's cash on an invoice."""

    invoice_id: str
    applied_amount: Decimal
    written_off_amount: Decimal
    invoice_open_after: Decimal
    kind: ApplicationKind


class PaymentSettled(Event):
    TOPIC = "payments.payment-settled"
    KEY_FIELD = "payment_id"
    payment_id: str
    account_id: str
    invoice_id: str | None = None
    amount: Decimal
    fee_amount: Decimal
    currency: str
    settled_at: datetime
    method: str
    gateway_reference: str
    # A remittance: how the payer split the amount over invoices; the rest stays unapplied.
    allocations: list[Allocation] | None = None


class CustomerSynced(Event):
    TOPIC = "erp.customer-synced"
    KEY_FIELD = "account_id"
    account_id: str
    erp_customer_id: str
    billing_account_id: str
    action: SyncAction
    version: int
    matched_account_id: str | None = None
    match_rule: str | None = None


class SubscriptionActivated(Event):
    TOPIC = "billing.subscription-activated"
    KEY_FIELD = "subscription_id"
    subscription_id: str
    opportunity_id: str
    account_id: str
    billing_account_id: str
    currency: str
    phases: list[SubscriptionPhase]


class InvoicePosted(Event):
    TOPIC = "erp.invoice-posted"
    KEY_FIELD = "invoice_id"
    invoice_id: str
    document_type: DocumentType = DocumentType.INVOICE
    document_id: str = ""
    erp_document_id: str
    journal_entry_id: str
    legal_entity: str
    currency: str
    journal_lines: list[JournalLine]
    posted_at: datetime
    accounting_date: date | None = None  # the journal's date in the books
    # An invoice that used the customer's credit balance as it posted: how much, and the
    # journal of that use (debit 2400, credit 1200). None: it used none.
    credit_applied: Decimal | None = None
    credit_journal_entry_id: str | None = None
    functional_currency: str | None = None  # of the lines' functional amounts
    due_on: date | None = None  # an invoice's due date, that its receivable ages from


class PaymentApplied(Event):
    TOPIC = "erp.payment-applied"
    KEY_FIELD = "payment_id"
    payment_id: str
    invoice_id: str | None = None
    currency: str
    applied_amount: Decimal
    unapplied_amount: Decimal
    invoice_open_after: Decimal | None = None
    status: PaymentStatus
    journal_entry_id: str
    journal_lines: list[JournalLine]
    account_id: str | None = None
    erp_customer_id: str | None = None
    legal_entity: str | None = None
    written_off_amount: Decimal | None = None
    accounting_date: date | None = None  # the journal's date in the books
    # Each use of the payment's cash this event reports (None from earlier versions).
    applications: list[Application] | None = None
    # Set when the payment named an invoice its payer may not pay: its cash waits for review.
    review_reason: str | None = None
    # Cash held for invoices not posted yet, applied when each posts.
    earmarked: list[Allocation] | None = None
    functional_currency: str | None = None  # of the lines' functional amounts


class RevenueRecognized(Event):
    """A recognition run released one month of deferred revenue of a legal entity and currency
    to revenue. Keyed by legal entity, so its months arrive in order."""

    TOPIC = "erp.revenue-recognized"
    KEY_FIELD = "legal_entity"
    legal_entity: str
    currency: str
    period: date  # the month's first day
    journal_entry_id: str
    amount: Decimal
    lines: list[JournalLine]
    accounting_date: date | None = None  # the journal's date in the books
    functional_currency: str | None = None  # of the lines' functional amounts

    @property
    def document_key(self) -> str:
        return f"{self.TOPIC}:{self.journal_entry_id}"  # each release is a document


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TOPIC: cls
    for cls in (
        AccountUpserted,
        OpportunityClosed,
        InvoiceIssued,
        CreditMemoIssued,
        PaymentSettled,
        RefundSettled,
        DisputeUpdated,
        CustomerSynced,
        SubscriptionActivated,
        InvoicePosted,
        PaymentApplied,
        RevenueRecognized,
        PayoutPaid,
        PayoutReconciled,
        FinanceKpis,
    )
}
