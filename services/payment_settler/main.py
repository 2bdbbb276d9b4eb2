"""Wiring of payment-settler: its topic, its handler, the ERP and the cross-reference."""

from __future__ import annotations

import psycopg

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import PaymentSettled
from finsync.reference.erp.adapter import ReferenceErp
from finsync.service import Service
from finsync.settings import Settings

from .handler import Systems, settle_payment

TOLERANCES = Settings.from_env().payment_tolerances  # a malformed one stops the service here


def bind(conn: psycopg.Connection) -> Systems:
    return Systems(ReferenceErp(conn), CrossReferenceStore(conn), TOLERANCES)


SERVICE: Service[Systems] = Service(
    name="payment-settler", handlers={PaymentSettled.TOPIC: settle_payment}, bind=bind
)
