"""The demo's last table: finance-analytics' figures per legal entity and currency, once the
app has counted everything the run published."""

from __future__ import annotations

import time
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from finsync.domain.accounting import fmt
from finsync.ops.kpis import AnalyticsUnavailable, Kpis, fetch
from finsync.runtime import clients
from finsync.settings import Settings
from services.finance_analytics.reader import DEAD_LETTER_TOPICS, EVENT_TOPICS

DAYS = 90


def caught_up(settings: Settings, timeout: float = 120) -> Kpis:
    """The figures once the app has committed every record of its topics (or the timeout)."""
    topics = [*EVENT_TOPICS, *DEAD_LETTER_TOPICS]
    deadline = time.monotonic() + timeout
    while True:
        kpis = fetch(settings, DAYS)
        lag = clients.group_lag(settings, settings.analytics_group, topics)
        if (kpis.ready and lag == 0) or time.monotonic() > deadline:
            return kpis
        time.sleep(1.0)


def print_kpis(console: Console, settings: Settings) -> None:
    try:
        kpis = caught_up(settings)
    except AnalyticsUnavailable as exc:
        console.print(f"[yellow]no figures from finance-analytics[/yellow]: {exc}")
        return
    t = Table(
        title=f"Finance KPIs, last {DAYS} days (finance-analytics, {kpis.events_counted} events)",
        title_justify="left",
    )
    for column in ("entity", "bookings", "net billings", "collections", "open AR", "of it 90+"):
        t.add_column(column, justify="left" if column == "entity" else "right")
    t.add_column("unapplied cash", justify="right")
    t.add_column("DSO", justify="right")
    for entity, currency in kpis.books():
        rows = kpis.of(entity, currency)
        last = rows[-1]
        sums = [
            sum((getattr(r, f) for r in rows), Decimal(0))
            for f in ("bookings", "net_billings", "collections")
        ]
        if not any(sums) and not last.open_ar and not last.unapplied_cash:
            continue
        t.add_row(
            entity,
            *(fmt(v, currency) for v in (*sums, last.open_ar, last.aging[4], last.unapplied_cash)),
            "—" if last.dso is None else f"{last.dso} d",
        )
    console.print(t)
