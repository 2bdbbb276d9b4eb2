"""What a contract line bills, and when: pure calendar and money rules shared by
subscription-activator (phases, contract value), the reference billing system's invoice run and
the scenario that predicts its outcome.

Recurring lines bill in advance: quantity x unit price at the start of every billing period,
from the phase's start date until its end date. A ONE_TIME line bills once, on its start date.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from finsync.contract.events import BillingPeriod
from finsync.domain.accounting import MINOR_UNITS
from finsync.domain.tax import TaxRounding, line_taxes
from finsync.ports.billing import Phase

PERIOD_MONTHS = {BillingPeriod.MONTHLY: 1, BillingPeriod.QUARTERLY: 3, BillingPeriod.ANNUAL: 12}


def money(amount: Decimal, currency: str) -> Decimal:
    """Rounded to the currency's minor unit, half up, as an invoice prints it."""
    return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_UP)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day when it is shorter (Jan 31 + 1 =
    Feb 28)."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def periods_in_term(period: BillingPeriod, term_months: int) -> int | None:
    """How many times a line bills over its term; None when the term is not a whole number of
    billing periods."""
    if period is BillingPeriod.ONE_TIME:
        return 1
    whole, rest = divmod(term_months, PERIOD_MONTHS[period])
    return whole if rest == 0 else None


def phase_end(start: date, period: BillingPeriod, term_months: int) -> date:
    if period is BillingPeriod.ONE_TIME:
        return start
    return add_months(start, term_months) - timedelta(days=1)


def period_charge(quantity: Decimal, unit_price: Decimal, currency: str) -> Decimal:
    return money(quantity * unit_price, currency)


def line_value(
    quantity: Decimal, unit_price: Decimal, period: BillingPeriod, term_months: int, currency: str
) -> Decimal | None:
    """What a contract line bills over its term, before tax; None when the term is not a whole
    number of billing periods."""
    count = periods_in_term(period, term_months)
    return None if count is None else period_charge(quantity, unit_price, currency) * count


@dataclass(frozen=True)
class Period:
    start: date
    end: date | None  # None for a one-time charge: nothing to defer


def billing_periods(period: BillingPeriod, start: date, end: date, as_of: date) -> list[Period]:
    """The periods of a phase that bill on or before `as_of`."""
    if period is BillingPeriod.ONE_TIME:
        return [Period(start, None)] if start <= as_of else []
    months, out, k = PERIOD_MONTHS[period], [], 0
    while (begin := add_months(start, k * months)) <= min(end, as_of):
        out.append(Period(begin, min(add_months(start, (k + 1) * months) - timedelta(days=1), end)))
        k += 1
    return out


@dataclass(frozen=True)
class Charge:
    phase_no: int
    line_id: str
    sku: str
    description: str
    period: Period
    amount: Decimal
    tax_amount: Decimal


@dataclass(frozen=True)
class InvoiceDraft:
    """What one invoice of a subscription bills: every phase period starting on its date."""

    billing_date: date
    charges: tuple[Charge, ...]

    @property
    def subtotal(self) -> Decimal:
        return sum((c.amount for c in self.charges), Decimal(0))

    @property
    def tax_total(self) -> Decimal:
        return sum((c.tax_amount for c in self.charges), Decimal(0))


def due_invoices(
    phases: Iterable[tuple[int, Phase]],
    currency: str,
    tax_rate: Decimal,
    as_of: date,
    billed: set[tuple[int, date]] | None = None,
    rounding: TaxRounding = TaxRounding.LINE,
) -> list[InvoiceDraft]:
    """The invoices a subscription owes by `as_of`, one per billing date, leaving out the
    (phase number, period start) pairs already `billed`. Phases come numbered, as billing
    stores them. Tax is rounded per line or once per invoice, as the legal entity's
    `rounding` says."""
    billed = billed or set()
    by_date: dict[date, list[Charge]] = {}
    for phase_no, p in phases:
        amount = period_charge(p.quantity, p.unit_price, currency)
        for period in billing_periods(p.billing_period, p.start_date, p.end_date, as_of):
            if (phase_no, period.start) in billed or not amount:
                continue  # billed already, or free: nothing to invoice
            description = p.description  # a one-time charge has no service period to print
            if period.end is not None:
                description += f" ({period.start:%Y-%m-%d} to {period.end:%Y-%m-%d})"
            charge = Charge(
                phase_no=phase_no,
                line_id="",
                sku=p.sku,
                description=description,
                period=period,
                amount=amount,
                tax_amount=Decimal(0),  # taxed below, once the invoice's lines are known
            )
            by_date.setdefault(period.start, []).append(charge)
    drafts = []
    for day, charges in sorted(by_date.items()):
        ordered = sorted(charges, key=lambda c: c.phase_no)
        taxes = line_taxes([(c.amount, tax_rate) for c in ordered], currency, rounding)
        lines = zip(ordered, taxes, strict=True)
        drafts.append(
            InvoiceDraft(
                day,
                tuple(
                    replace(c, line_id=str(n), tax_amount=tax)
                    for n, (c, tax) in enumerate(lines, 1)
                ),
            )
        )
    return drafts
