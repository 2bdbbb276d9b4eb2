"""The figures, from the facts counted so far: pure, in memory, rebuilt from the app's table.

Per legal entity and currency it keeps day totals of each measure, and the receivable's moves
by due date, so the open AR of any day, and its aging as of that day, are prefix sums: a day's
figures cost the number of due dates, not the number of invoices.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from itertools import accumulate

from .facts import ZERO, Fact, Measure

DSO_DAYS = 90
MAX_DAYS = 400  # the longest series a figures() call returns, ending on its last day
AGING = ("current", "1-30", "31-60", "61-90", "90+")
DAILY = (Measure.BOOKINGS, Measure.BILLINGS, Measure.CREDITS, Measure.COLLECTIONS)
Book = tuple[str, str]  # legal entity, currency


def bucket(days_past_due: int) -> int:
    """The AGING index of an amount so many days past its due date."""
    if days_past_due <= 0:
        return 0
    return min((days_past_due - 1) // 30 + 1, 4)


@dataclass(frozen=True)
class DayFigures:
    legal_entity: str
    currency: str
    day: date
    bookings: Decimal
    billings: Decimal
    credits: Decimal
    collections: Decimal
    open_ar: Decimal
    aging: tuple[Decimal, Decimal, Decimal, Decimal, Decimal]  # as AGING
    unapplied_cash: Decimal
    dso: Decimal | None  # days; None when the 90 days' net billings are not positive

    @property
    def net_billings(self) -> Decimal:
        return self.billings - self.credits


class _Moves:
    """Amounts by day, read as running totals."""

    def __init__(self) -> None:
        self.by_day: dict[date, Decimal] = defaultdict(Decimal)

    def add(self, day: date, amount: Decimal) -> None:
        self.by_day[day] += amount

    def running(self) -> tuple[list[date], list[Decimal]]:
        days = sorted(self.by_day)
        return days, list(accumulate(self.by_day[d] for d in days))


def _at(series: tuple[list[date], list[Decimal]], day: date) -> Decimal:
    days, totals = series
    i = bisect_right(days, day)
    return totals[i - 1] if i else ZERO


class Ledger:
    def __init__(self) -> None:
        self.counted = 0  # facts' events counted, for people to tie figures to a stream
        self.version = 0  # grows with every change, so a publisher sees there is news
        self._daily: dict[Book, dict[Measure, dict[date, Decimal]]] = {}
        self._unapplied: dict[Book, _Moves] = {}
        # The receivable by due date (None: of an invoice not seen yet, counted as current).
        self._receivable: dict[Book, dict[date | None, _Moves]] = {}
        self._due: dict[str, date] = {}
        self._early: dict[str, list[Fact]] = defaultdict(list)  # moves before their invoice
        self._dead: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, facts: Iterable[Fact]) -> None:
        """Count one event's facts (the caller makes sure each event comes once)."""
        for f in facts:
            self._add(f)
        self.counted += 1
        self.version += 1

    def _add(self, f: Fact) -> None:
        if f.measure is Measure.DEAD_LETTERS:
            self._dead[f.legal_entity][f.day] += int(f.amount)
            return
        book = (f.legal_entity, f.currency)
        if f.measure is Measure.UNAPPLIED:
            self._unapplied.setdefault(book, _Moves()).add(f.day, f.amount)
        elif f.measure is Measure.RECEIVABLE:
            self._receive(book, f)
        else:
            daily = self._daily.setdefault(book, {})
            daily.setdefault(f.measure, defaultdict(Decimal))[f.day] += f.amount
        self._daily.setdefault(book, {})

    def _receive(self, book: Book, f: Fact) -> None:
        by_due = self._receivable.setdefault(book, {})
        if f.due_on is not None and f.invoice_id not in self._due:
            # The invoice itself: moves that came before it age from its due date from now on.
            self._due[f.invoice_id] = f.due_on
            for early in self._early.pop(f.invoice_id, []):
                by_due[None].add(early.day, -early.amount)
                by_due.setdefault(f.due_on, _Moves()).add(early.day, early.amount)
        due = f.due_on or self._due.get(f.invoice_id)
        if due is None:
            self._early[f.invoice_id].append(f)
        by_due.setdefault(due, _Moves()).add(f.day, f.amount)

    def books(self) -> list[Book]:
        return sorted(self._daily)

    def figures(self, today: date | None = None, days: int = MAX_DAYS) -> list[DayFigures]:
        """Each book's figures for every day from its first activity (at most `days` days)
        through `today` (default: the last day with activity in any book). Balances and aging
        go on ageing after the last event; an event dated after `today` (a typo's year 2310)
        counts, and shows from its day on, without pushing today's figures out of the series."""
        last = today or self._last_day()
        if last is None or not self._daily:
            return []
        rows: list[DayFigures] = []
        for book in self.books():
            rows += self._series(book, last, days)
        return rows

    def dead_letters(self) -> dict[date, dict[str, int]]:
        out: dict[date, dict[str, int]] = defaultdict(dict)
        for service, by_day in self._dead.items():
            for day, n in by_day.items():
                out[day][service] = n
        return dict(out)

    def _days(self, book: Book) -> set[date]:
        found = {d for by_day in self._daily[book].values() for d in by_day}
        found |= set(self._unapplied.get(book, _Moves()).by_day)
        for moves in self._receivable.get(book, {}).values():
            found |= set(moves.by_day)
        return found

    def _last_day(self) -> date | None:
        days = [max(self._days(b)) for b in self._daily if self._days(b)]
        days += [max(by_day) for by_day in self._dead.values() if by_day]
        return max(days, default=None)

    def _series(self, book: Book, last: date, days: int) -> list[DayFigures]:
        active = self._days(book)
        if not active or min(active) > last:
            return []
        first = max(min(active), last - timedelta(days=days - 1))
        daily = self._daily[book]
        net = _Moves()
        for d, v in daily.get(Measure.BILLINGS, {}).items():
            net.add(d, v)
        for d, v in daily.get(Measure.CREDITS, {}).items():
            net.add(d, -v)
        net_running = net.running()
        unapplied = self._unapplied.get(book, _Moves()).running()
        receivable = [
            (due, moves.running()) for due, moves in self._receivable.get(book, {}).items()
        ]
        rows = []
        day = first
        while day <= last:
            aging = [ZERO] * 5
            for due, running in receivable:
                amount = _at(running, day)
                if amount:
                    aging[bucket((day - due).days) if due else 0] += amount
            open_ar = sum(aging, ZERO)
            window = _at(net_running, day) - _at(net_running, day - timedelta(days=DSO_DAYS))
            bookings, billings, credits, collections = (
                daily.get(m, {}).get(day, ZERO) for m in DAILY
            )
            rows.append(
                DayFigures(
                    legal_entity=book[0],
                    currency=book[1],
                    day=day,
                    bookings=bookings,
                    billings=billings,
                    credits=credits,
                    collections=collections,
                    open_ar=open_ar,
                    aging=(aging[0], aging[1], aging[2], aging[3], aging[4]),
                    unapplied_cash=_at(unapplied, day),
                    dso=(open_ar / window * DSO_DAYS).quantize(Decimal("0.1"))
                    if window > 0
                    else None,
                )
            )
            day += timedelta(days=1)
        return rows
