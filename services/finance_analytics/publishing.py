"""What the app publishes: one FinanceKpis per day whose figures changed since it last did."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime

from finsync.contract.kpi_events import DeadLetterCount, FinanceKpis, KpiFigures

from .ledger import DayFigures, Ledger

SOURCE = "finsync.finance-analytics"


def kpi_figures(row: DayFigures) -> KpiFigures:
    return KpiFigures(
        legal_entity=row.legal_entity,
        currency=row.currency,
        bookings=row.bookings,
        billings=row.billings,
        credits=row.credits,
        net_billings=row.net_billings,
        collections=row.collections,
        open_ar=row.open_ar,
        ar_current=row.aging[0],
        ar_1_30=row.aging[1],
        ar_31_60=row.aging[2],
        ar_61_90=row.aging[3],
        ar_over_90=row.aging[4],
        unapplied_cash=row.unapplied_cash,
        dso=row.dso,
    )


Content = tuple[tuple[KpiFigures, ...], tuple[DeadLetterCount, ...]]


def by_day(ledger: Ledger, today: date) -> dict[date, Content]:
    """Every day's figures and dead letters as they stand."""
    figures: dict[date, list[KpiFigures]] = defaultdict(list)
    for row in ledger.figures(today):
        figures[row.day].append(kpi_figures(row))
    # Only days the figures cover: a day past the window published with no rows would replace,
    # on the compacted topic, the figures it was last published with.
    first = min(figures, default=today)
    letters = {d: n for d, n in ledger.dead_letters().items() if first <= d <= today}
    return {
        day: (
            tuple(figures.get(day, [])),
            tuple(
                DeadLetterCount(service=s, count=n) for s, n in sorted(letters.get(day, {}).items())
            ),
        )
        for day in sorted(set(figures) | set(letters))
    }


class Publisher:
    """Remembers what it published, so only changed days go out again."""

    def __init__(self) -> None:
        self.sent: dict[date, Content] = {}

    def changed(self, ledger: Ledger, now: datetime) -> list[FinanceKpis]:
        out = []
        for day, content in by_day(ledger, now.astimezone(UTC).date()).items():
            if self.sent.get(day) == content:
                continue
            out.append(
                FinanceKpis(
                    event_id=uuid.uuid4(),
                    occurred_at=now,
                    source=SOURCE,
                    correlation_id=f"finance-kpis:{day.isoformat()}",
                    day=day,
                    figures=list(content[0]),
                    dead_letters=list(content[1]),
                    events_counted=ledger.counted,
                )
            )
        return out

    def mark_sent(self, event: FinanceKpis) -> None:
        self.sent[event.day] = (tuple(event.figures), tuple(event.dead_letters))
