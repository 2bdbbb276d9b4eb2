"""Revenue recognition, pure: when an invoice line's revenue is earned, and what a credit memo
takes back from revenue and from deferred revenue.

A line with a service period is earned ratably by day: one schedule row per calendar month the
period touches, the first partial month included. Amounts are rounded cumulatively — what is
recognised through month k is round(amount x days through k / days in the period), and month
k's row is the difference — so the rows add up exactly to the line, in the currency's minor
units, and no month is off by more than one minor unit. A line without a service period (a
one-time charge) is revenue at once and has no schedule.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from finsync.domain.accounting import MINOR_UNITS, ZERO


@dataclass(frozen=True)
class ScheduleRow:
    period: date  # the first day of the month
    amount: Decimal


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=_days_in_month(day.year, day.month))


@cache  # a schedule asks it of every month it spans, for every line of every invoice
def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def last_closed_month(through: date) -> date:
    """The first day of the last month that ends on or before `through`."""
    if through == month_end(through):
        return month_start(through)
    return month_start(month_start(through) - timedelta(days=1))


def _unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def _minor(amount: Decimal, currency: str) -> int:
    """An amount in whole minor units (cents); it must have no finer fraction."""
    units = amount / _unit(currency)
    if units != units.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(units)


def _share(total: int, part: int, whole: int) -> int:
    """round(total x part / whole), half up, in exact integers (total >= 0, 0 < whole)."""
    return (2 * total * part + whole) // (2 * whole)


def _cumulative(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights`, rounded cumulatively: the parts sum to `total`
    exactly, and none is more than its weight when total <= sum(weights)."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    parts, done, through = [], 0, 0
    for weight in weights:
        through += weight
        upto = _share(total, through, whole)
        parts.append(upto - done)
        done = upto
    return parts


def schedule(amount: Decimal, currency: str, start: date, end: date) -> tuple[ScheduleRow, ...]:
    """The monthly rows of `amount` earned from `start` to `end` (both included)."""
    if end < start:
        raise ValueError(f"service period ends {end} before it starts {start}")
    if amount < 0:
        raise ValueError("a schedule holds no negative amounts")
    # Month by month as (year, month): this runs for every line of every invoice posted.
    months, days = [], []
    year, month, first = start.year, start.month, start
    while True:
        last = date(year, month, _days_in_month(year, month))
        months.append(date(year, month, 1))
        if last >= end:
            days.append((end - first).days + 1)
            break
        days.append((last - first).days + 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = date(year, month, 1)
    unit = _unit(currency)
    parts = _cumulative(_minor(amount, currency), days)
    return tuple(ScheduleRow(m, p * unit) for m, p in zip(months, parts, strict=True))


@dataclass(frozen=True)
class CreditSplit:
    """What a credit memo line takes back from an invoice line."""

    revenue: Decimal  # from revenue: the part recognition has released
    deferred: Decimal  # from deferred revenue: the part still waiting
    cancelled: tuple[ScheduleRow, ...]  # per unreleased month, what it will no longer release


def split_credit(
    amount: Decimal, left: Decimal, unreleased: Sequence[ScheduleRow], currency: str
) -> CreditSplit:
    """Split a credit of `amount` on an invoice line of which `left` is not credited yet, and
    `unreleased` (per month: amount less cancelled, not yet recognised) still deferred.

    The credit takes from revenue and deferred revenue in proportion to what each holds of
    `left`; the deferred part cancels the unreleased months in proportion to what each still
    holds, both rounded cumulatively. Crediting all that is left cancels every unreleased month
    in full. The caller checks 0 <= amount <= left (or left <= amount <= 0 for a negative line).
    """
    deferred_total = sum((r.amount for r in unreleased), ZERO)
    if amount == left:
        return CreditSplit(amount - deferred_total, deferred_total, tuple(unreleased))
    if deferred_total == 0 or left == 0:
        return CreditSplit(amount, ZERO, ())
    unit = _unit(currency)

    def minor(x: Decimal) -> int:
        return _minor(x, currency)

    deferred = _share(minor(amount), minor(deferred_total), minor(left))
    parts = _cumulative(deferred, [minor(r.amount) for r in unreleased])
    cancelled = tuple(
        ScheduleRow(r.period, p * unit) for r, p in zip(unreleased, parts, strict=True)
    )
    return CreditSplit(amount - deferred * unit, deferred * unit, cancelled)
