"""Wiring of invoice-poster: its topics, its handlers, its ERP adapter, the cross-reference (whose
hierarchy a prepayment's payer is in) and the cash policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import (
    CreditMemoIssued,
    InvoiceIssued,
    InvoicePosted,
    PaymentApplied,
)
from finsync.ports.crossref import CrossReference
from finsync.reference.erp.adapter import ReferenceErp
from finsync.service import Service
from finsync.settings import Settings

from .handler import post_credit_memo, post_invoice
from .held_cash import CashPolicy

_settings = Settings.from_env()  # a malformed setting stops the service here
POLICY = CashPolicy(_settings.auto_apply, _settings.payment_tolerances)


@dataclass(frozen=True)
class Systems:
    erp: ReferenceErp
    accounts: CrossReference

    def flush(self) -> None:
        self.erp.flush()


def bind(conn: psycopg.Connection) -> Systems:
    return Systems(ReferenceErp(conn), CrossReferenceStore(conn))


def _invoice(invoice: InvoiceIssued, s: Systems) -> Sequence[InvoicePosted | PaymentApplied]:
    return post_invoice(invoice, s.erp, s.accounts, POLICY)


def _credit_memo(memo: CreditMemoIssued, s: Systems) -> Sequence[InvoicePosted]:
    return post_credit_memo(memo, s.erp)


SERVICE: Service[Systems] = Service(
    name="invoice-poster",
    handlers={InvoiceIssued.TOPIC: _invoice, CreditMemoIssued.TOPIC: _credit_memo},
    bind=bind,
)
