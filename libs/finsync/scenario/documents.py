"""Random but valid billing documents — invoices and credit memos — straight from billing, for the
benchmark and the invoice-poster tests. (`stages` plays the whole order-to-cash flow.)
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.billing_schedule import add_months, money

PRODUCTS = [
    ("PLAT-SEAT", "Platform seat", Decimal("49.00"), "MONTHLY"),
    ("PLAT-SEAT-ANNUAL", "Platform seat, annual", Decimal("470.00"), "ANNUAL"),
    ("ANALYTICS", "Analytics add-on", Decimal("1200.00"), "ANNUAL"),
    ("SUPPORT-PREM", "Premium support", Decimal("300.00"), "QUARTERLY"),
    ("ONBOARDING", "Onboarding package", Decimal("2500.00"), "ONE_TIME"),
]
# Legal entity, currency, VAT/sales-tax rate.
ENTITIES = [
    ("ACME-US", "USD", Decimal("0.0725")),
    ("ACME-DE", "EUR", Decimal("0.19")),
    ("ACME-UK", "GBP", Decimal("0.20")),
    ("ACME-JP", "JPY", Decimal("0.10")),
]
FX = {"USD": Decimal(1), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "JPY": Decimal(150)}
MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "ANNUAL": 12, "ONE_TIME": 0}


def invoice(rng: random.Random, number: int, issued_on: date | None = None) -> InvoiceIssued:
    entity, currency, tax_rate = rng.choice(ENTITIES)
    issued = issued_on or date(2026, 11, 1) + timedelta(days=rng.randrange(28))
    lines = []
    for i, (sku, name, usd_price, period) in enumerate(rng.sample(PRODUCTS, rng.randint(1, 3)), 1):
        qty = rng.randint(1, 25) if period != "ONE_TIME" else 1
        amount = money(usd_price * FX[currency] * qty, currency)
        start = issued.replace(day=1)
        months = MONTHS[period]
        end = add_months(start, months) - timedelta(days=1) if months else None
        lines.append(
            InvoiceLine(
                line_id=str(i),
                description=f"{name} x {qty}",
                sku=sku,
                amount=amount,
                tax_amount=money(amount * tax_rate, currency),
                service_period_start=start if months else None,
                service_period_end=end,
            )
        )
    subtotal = sum((x.amount for x in lines), Decimal(0))
    tax = sum((x.tax_amount for x in lines), Decimal(0))
    invoice_id = f"INV-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    return InvoiceIssued(
        event_id=event_id,
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=f"corr-{invoice_id}",
        invoice_id=invoice_id,
        invoice_number=f"{entity}-{issued.year}-{number:06d}",
        account_id=f"ACC-{rng.randrange(1, 400):04d}",
        subscription_id=f"SUB-{rng.randrange(1, 900):04d}",
        legal_entity=entity,
        currency=currency,
        issued_on=issued,
        due_on=issued + timedelta(days=30),
        lines=lines,
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
    )


def credit_memo(rng: random.Random, inv: InvoiceIssued) -> CreditMemoIssued:
    """Credits the first line of the invoice in full."""
    line = inv.lines[0]
    return CreditMemoIssued(
        event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=inv.correlation_id,
        credit_memo_id=f"CM-{inv.invoice_id[4:]}",
        invoice_id=inv.invoice_id,
        account_id=inv.account_id,
        legal_entity=inv.legal_entity,
        currency=inv.currency,
        issued_on=inv.issued_on + timedelta(days=3),
        lines=[line],
        subtotal=line.amount,
        tax_total=line.tax_amount,
        total=line.amount + line.tax_amount,
    )
