"""Wiring of account-sync: its topic, its handler, the ERP, billing and cross-reference."""

from __future__ import annotations

import psycopg

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import AccountUpserted
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp.adapter import ReferenceErp
from finsync.service import Service

from .handler import Systems, sync_account


def bind(conn: psycopg.Connection) -> Systems:
    return Systems(ReferenceErp(conn), ReferenceBilling(conn), CrossReferenceStore(conn))


SERVICE: Service[Systems] = Service(
    name="account-sync", handlers={AccountUpserted.TOPIC: sync_account}, bind=bind
)
