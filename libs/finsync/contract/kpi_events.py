"""What finance-analytics publishes: one day's figures per legal entity and currency, field for
field the schemas/analytics.finance-kpis.avsc contract."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from finsync.contract.envelope import Event, Line


class KpiFigures(Line):
    legal_entity: str
    currency: str
    bookings: Decimal
    billings: Decimal
    credits: Decimal
    net_billings: Decimal
    collections: Decimal
    open_ar: Decimal
    ar_current: Decimal
    ar_1_30: Decimal
    ar_31_60: Decimal
    ar_61_90: Decimal
    ar_over_90: Decimal
    unapplied_cash: Decimal
    dso: Decimal | None = None  # None: no positive net billings in the 90 days


class DeadLetterCount(Line):
    service: str
    count: int


class FinanceKpis(Event):
    """Keyed by the day, so the newest record of a key holds that day's current figures."""

    TOPIC = "analytics.finance-kpis"
    KEY_FIELD = "day"
    day: date
    figures: list[KpiFigures]
    dead_letters: list[DeadLetterCount]
    events_counted: int
