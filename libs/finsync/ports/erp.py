"""The ERP port: what services may ask of the system of record for the books."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from finsync.accounting import Journal


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

    def open_item(self, invoice_id: str) -> OpenItem | None:
        """The invoice's AR item, None if the invoice is not posted (yet)."""
