"""The payment gateway's events beyond settled payments (refunds, disputes, payouts) and what
payment-settler publishes of a payout: field for field their schemas/<topic>.avsc contract."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from finsync.contract.envelope import Event, JournalLine, Line


class PayoutItemType(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    DISPUTE = "DISPUTE"
    FEE = "FEE"
    ADJUSTMENT = "ADJUSTMENT"


class PayoutStatus(StrEnum):
    MATCHED = "MATCHED"
    MISMATCH = "MISMATCH"


class PayoutDifferenceType(StrEnum):
    """What did not match: an item (by its type), or the TOTAL: items that do not add up to
    the payout's amount."""

    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    DISPUTE = "DISPUTE"
    FEE = "FEE"
    ADJUSTMENT = "ADJUSTMENT"
    TOTAL = "TOTAL"


class DisputeStatus(StrEnum):
    OPENED = "OPENED"
    WON = "WON"
    LOST = "LOST"


class RefundSettled(Event):
    TOPIC = "payments.refund-settled"
    KEY_FIELD = "refund_id"
    refund_id: str
    account_id: str
    payment_id: str | None = None
    legal_entity: str
    currency: str
    amount: Decimal
    fee_amount: Decimal
    refunded_at: datetime
    gateway_reference: str


class DisputeUpdated(Event):
    TOPIC = "payments.dispute-updated"
    KEY_FIELD = "dispute_id"
    dispute_id: str
    payment_id: str
    account_id: str
    legal_entity: str
    currency: str
    status: DisputeStatus
    amount: Decimal
    fee_amount: Decimal
    updated_at: datetime
    reason: str | None = None

    @property
    def document_key(self) -> str:
        return f"{self.TOPIC}:{self.dispute_id}:{self.status}"  # each status is a document


class PayoutItem(Line):
    """One movement a payout settles; net is its effect on the payout (gross - fee): positive
    for a payment, negative for a refund, a dispute opened or a fee withheld."""

    type: PayoutItemType
    reference_id: str | None = None  # the payment, refund or dispute id
    gross: Decimal
    fee: Decimal
    net: Decimal


class PayoutPaid(Event):
    """A gateway paid out what it held into the bank account of a legal entity."""

    TOPIC = "payments.payout-paid"
    KEY_FIELD = "payout_id"
    payout_id: str
    legal_entity: str
    currency: str
    amount: Decimal  # what reached the bank
    arrival_date: date
    items: list[PayoutItem]


class PayoutDifference(Line):
    type: PayoutDifferenceType
    reference_id: str | None = None
    expected_net: Decimal | None = None  # what the ERP holds for it in clearing, if anything
    reported_net: Decimal  # what the payout reported (TOTAL: the items' sum)
    reason: str


class PayoutReconciled(Event):
    """payment-settler booked a payout: matched items cleared 1010, differences went to 1090."""

    TOPIC = "erp.payout-reconciled"
    KEY_FIELD = "payout_id"
    payout_id: str
    legal_entity: str
    currency: str
    amount: Decimal
    status: PayoutStatus
    matched_amount: Decimal  # net of the items matched to documents in clearing
    differences: list[PayoutDifference]
    journal_entry_id: str
    journal_lines: list[JournalLine]
    accounting_date: date | None = None  # the journal's date in the books
