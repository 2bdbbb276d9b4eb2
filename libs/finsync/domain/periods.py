"""Accounting periods: calendar months per legal entity, open unless closed. Pure.

A document keeps its own date as its accounting date while that month is open. Dated in a
closed month, it posts on the first day of the first open month after it, and the journal
keeps the document's date and why it moved: the books of a closed month do not change.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date


def period_of(day: date) -> date:
    """The period a day falls in: its month's first day."""
    return day.replace(day=1)


def next_period(period: date) -> date:
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def label(period: date) -> str:
    """How people name a period: 2026-03."""
    return f"{period.year:04d}-{period.month:02d}"


def parse(text: str) -> date:
    """A period from its name (2026-03); ValueError for anything else."""
    year, dash, month = text.partition("-")
    if not (dash and len(year) == 4 and len(month) == 2 and year.isdigit() and month.isdigit()):
        raise ValueError(f"{text!r} is not a period such as 2026-03")
    return date(int(year), int(month), 1)  # ValueError for month 13


@dataclass(frozen=True)
class AccountingDate:
    """Where a journal lands: `on`; when moved out of a closed period, the document's own date
    and the reason."""

    on: date
    original: date | None = None
    reason: str | None = None


def resolve(day: date, legal_entity: str, closed: Collection[date]) -> AccountingDate:
    """The accounting date of a document dated `day`, given the entity's closed periods (their
    first days)."""
    period = period_of(day)
    if period not in closed:
        return AccountingDate(day)
    last = period
    while next_period(last) in closed:
        last = next_period(last)
    if last == period:
        reason = f"period {label(period)} of {legal_entity} is closed"
    else:
        reason = f"periods {label(period)} to {label(last)} of {legal_entity} are closed"
    return AccountingDate(next_period(last), day, reason)
