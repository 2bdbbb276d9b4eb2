"""Wiring of subscription-activator: its topic, its handler, billing and the cross-reference."""

from __future__ import annotations

import psycopg

from finsync.adapters.crossref import CrossReferenceStore
from finsync.contract.events import OpportunityClosed
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.service import Service

from .handler import Systems, activate_subscription


def bind(conn: psycopg.Connection) -> Systems:
    return Systems(ReferenceBilling(conn), CrossReferenceStore(conn))


SERVICE: Service[Systems] = Service(
    name="subscription-activator",
    handlers={OpportunityClosed.TOPIC: activate_subscription},
    bind=bind,
)
