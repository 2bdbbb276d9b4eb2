"""Wiring of payment-settler: its topic, its handler, the ERP and the cross-reference."""

from __future__ import annotations

import psycopg

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import DisputeUpdated, PaymentSettled, PayoutPaid, RefundSettled
from finsync.reference.erp.adapter import ReferenceErp
from finsync.service import Service
from finsync.settings import Settings

from .handler import Systems, settle_payment
from .payout_handler import book_payout
from .refund_handler import settle_refund, update_dispute

SETTINGS = Settings.from_env()  # a malformed tolerance or policy stops the service here
TOLERANCES = SETTINGS.payment_tolerances


def bind(conn: psycopg.Connection) -> Systems:
    return Systems(
        ReferenceErp(conn), CrossReferenceStore(conn), TOLERANCES, SETTINGS.lost_disputes
    )


SERVICE: Service[Systems] = Service(
    name="payment-settler",
    handlers={
        PaymentSettled.TOPIC: settle_payment,
        PayoutPaid.TOPIC: book_payout,
        RefundSettled.TOPIC: settle_refund,
        DisputeUpdated.TOPIC: update_dispute,
    },
    bind=bind,
)
