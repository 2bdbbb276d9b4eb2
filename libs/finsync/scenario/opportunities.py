"""Closed-won opportunities: multi-line, phased contracts in four legal entities and currencies,
and a few that break the contract.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from finsync.contract.events import (
    AccountUpserted,
    BillingPeriod,
    OpportunityClosed,
    OpportunityLine,
)
from finsync.domain.billing_schedule import add_months, line_value, money
from finsync.scenario.documents import FX
from finsync.scenario.plan import envelope

# SKU, description, price per unit per period in USD, billing period, terms in months.
PRODUCTS = [
    ("PLAT-SEAT", "Platform seat", Decimal("49.00"), BillingPeriod.MONTHLY, (12, 24)),
    ("PLAT-SEAT-Q", "Platform seat, quarterly", Decimal("141.00"), BillingPeriod.QUARTERLY, (12,)),
    ("ANALYTICS", "Analytics add-on", Decimal("1200.00"), BillingPeriod.ANNUAL, (12, 24)),
    ("SUPPORT-PREM", "Premium support", Decimal("300.00"), BillingPeriod.QUARTERLY, (12,)),
    ("ONBOARDING", "Onboarding package", Decimal("2500.00"), BillingPeriod.ONE_TIME, (1,)),
]


def _line(
    rng: random.Random, n: int, product: tuple[str, str, Decimal, BillingPeriod, tuple[int, ...]],
    currency: str, start: date,
) -> OpportunityLine:  # fmt: skip
    sku, description, usd, period, terms = product
    quantity = Decimal(1) if period is BillingPeriod.ONE_TIME else Decimal(rng.randint(1, 40))
    return OpportunityLine(
        line_id=str(n),
        sku=sku,
        description=description,
        quantity=quantity,
        unit_price=money(usd * FX[currency], currency),
        billing_period=period,
        start_date=start,
        term_months=rng.choice(terms),
    )


def contract_value(lines: list[OpportunityLine], currency: str) -> Decimal:
    values = (
        line_value(x.quantity, x.unit_price, x.billing_period, x.term_months, currency)
        for x in lines
    )
    return sum((v or Decimal(0) for v in values), Decimal(0))


def opportunity(
    rng: random.Random, tag: str, k: int, buyer: AccountUpserted, as_of: date
) -> OpportunityClosed:
    """A deal signed in the last quarter; lines may start later than the deal (phased)."""
    start = as_of - timedelta(days=rng.randrange(0, 100))
    chosen = rng.sample(PRODUCTS, rng.randint(1, 3))
    lines = []
    for n, product in enumerate(chosen, 1):
        # A ramp: add-ons often start a month after the platform.
        phase_start = start if n == 1 or rng.random() < 0.5 else add_months(start, 1)
        lines.append(_line(rng, n, product, buyer.currency, min(phase_start, as_of)))
    opportunity_id = f"OPP-{tag}-{k:04d}"
    return OpportunityClosed.model_validate(
        {
            **envelope("crm", f"o2c-{opportunity_id}"),
            "opportunity_id": opportunity_id,
            "account_id": buyer.account_id,
            "closed_at": datetime.combine(start - timedelta(days=3), datetime.min.time(), UTC),
            "currency": buyer.currency,
            "legal_entity": buyer.legal_entity,
            "lines": lines,
            "total_contract_value": contract_value(lines, buyer.currency),
        }
    )


def invalid_opportunities(
    rng: random.Random, tag: str, buyer: AccountUpserted, as_of: date
) -> list[tuple[OpportunityClosed, str]]:
    base = opportunity(rng, tag, 9000, buyer, as_of)
    other = "EUR" if buyer.currency != "EUR" else "USD"
    first = base.lines[0]

    def variant(suffix: str, **changes: object) -> OpportunityClosed:
        return base.model_copy(
            update={"event_id": uuid.uuid4(), "opportunity_id": f"OPP-{tag}-{suffix}", **changes}
        )

    return [
        (variant("BAD-CURRENCY", currency=other), "InvalidEvent"),
        (variant("BAD-QUANTITY", lines=[first.model_copy(update={"quantity": Decimal(0)})]),
         "InvalidEvent"),
        (variant("BAD-TERM", lines=[first.model_copy(update={"term_months": 0})]), "InvalidEvent"),
        (variant("BAD-TOTAL", total_contract_value=base.total_contract_value + 100),
         "InvalidEvent"),
    ]  # fmt: skip
