"""What the ERP port speaks of payouts: the documents in gateway clearing (1010) a payout's
items name, and the booking of a payout matched against them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from finsync.contract.events import PayoutDifferenceType, PayoutItemType, PayoutStatus


class ClearingKind(StrEnum):
    """A movement of a document in gateway clearing that a payout item can settle."""

    PAYMENT = "PAYMENT"  # a card/ACH payment: +(amount - fee)
    REFUND = "REFUND"  # -(amount + fee)
    DISPUTE_OPENED = "DISPUTE_OPENED"  # the gateway withdrew the funds: -(amount + fee)
    DISPUTE_WON = "DISPUTE_WON"  # and reinstated them: +amount


@dataclass(frozen=True)
class ClearingDocument:
    kind: ClearingKind
    document_id: str  # the payment, refund or dispute id
    legal_entity: str
    currency: str
    net: Decimal  # its movement in 1010, signed as a payout item's net
    in_clearing: bool = True  # False: a payment booked straight to the bank (1000)
    paid_out_by: str | None = None  # the payout that took it already, if one did
    # A dispute still OPENED: its outcome (a reinstatement a payout may report) may follow.
    outcome_pending: bool = False


@dataclass(frozen=True)
class BookedItem:
    line_no: int
    type: PayoutItemType
    reference_id: str | None
    gross: Decimal
    fee: Decimal
    net: Decimal
    matched: ClearingKind | None = None  # the document it cleared (reference_id), if any


@dataclass(frozen=True)
class Difference:
    type: PayoutDifferenceType
    reference_id: str | None
    expected_net: Decimal | None
    reported_net: Decimal
    amount: Decimal  # what it credits to 1090 Payout differences
    reason: str


@dataclass(frozen=True)
class PayoutBooking:
    payout_id: str  # its idempotency key
    legal_entity: str
    currency: str
    amount: Decimal  # what reached the bank
    arrival_date: date
    items: tuple[BookedItem, ...]
    differences: tuple[Difference, ...]

    @property
    def status(self) -> PayoutStatus:
        return PayoutStatus.MISMATCH if self.differences else PayoutStatus.MATCHED

    @property
    def matched_amount(self) -> Decimal:
        """Out of clearing: the net of the items matched to documents."""
        return sum((x.net for x in self.items if x.matched), Decimal(0))

    @property
    def fee_amount(self) -> Decimal:
        """Gateway fees withheld from the payout (FEE items take from it: net < 0)."""
        return -sum((x.net for x in self.items if x.type is PayoutItemType.FEE), Decimal(0))

    @property
    def difference_amount(self) -> Decimal:
        return sum((d.amount for d in self.differences), Decimal(0))
