"""Wiring of invoice-poster: its topics, its handlers, its ERP adapter."""

from __future__ import annotations

import psycopg

from finsync.contract.events import CreditMemoIssued, InvoiceIssued
from finsync.ports.erp import Erp
from finsync.reference.erp.adapter import ReferenceErp
from finsync.service import Service

from .handler import post_credit_memo, post_invoice


def bind(conn: psycopg.Connection) -> Erp:
    return ReferenceErp(conn)


SERVICE: Service[Erp] = Service(
    name="invoice-poster",
    handlers={InvoiceIssued.TOPIC: post_invoice, CreditMemoIssued.TOPIC: post_credit_memo},
    bind=bind,
)
