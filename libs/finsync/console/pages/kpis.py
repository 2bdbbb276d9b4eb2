"""KPIs: what finance-analytics counts, one book (legal entity and currency) at a time, over the
last 30, 90 or 365 days: bookings, net billings and collections; the receivable by aging
bucket; the latest day's open AR, unapplied cash and DSO; dead letters per service.

The figures come from the app's web view through finsync.ops.kpis (the CLI's client), fetched
as the page is asked for: the handler runs in a worker thread, so the wait (2 s at most)
blocks no other page. Without the app the page says what to run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from finsync.console import web
from finsync.console.kpi_chart import ZERO, Column, Plot, grouped, money, stacked
from finsync.ops.kpis import AGING, AnalyticsUnavailable, KpiRow, Kpis, fetch

router = APIRouter()
PERIODS = (30, 90, 365)
WEEKLY_FROM = 120  # a longer period is drawn a week a bar: a bar a day would be a pixel wide
FLOWS = (("bookings", "c3"), ("net billings", "c2"), ("collections", "c4"))
AGING_COLOURS = ("k1", "k2", "k3", "k4", "k5")  # current to 90+, green to dark red
MAX_NAME = 100  # longer than any legal entity finsync accepts
START = "finsync run finance-analytics"
Book = tuple[str, str]  # legal entity, currency


@dataclass(frozen=True)
class Choice:
    book: Book | None
    note: str  # why it is not the book asked for; "" when it is


def choose(books: Sequence[Book], entity: str, currency: str) -> Choice:
    """The book asked for, else the entity's first currency, else the first book."""
    if not books:
        return Choice(None, "")
    if not entity:
        return Choice(books[0], "")
    if (entity, currency) in books:
        return Choice((entity, currency), "")
    of_entity = [b for b in books if b[0] == entity]
    if of_entity:
        asked = f" in {currency}" if currency else ""
        return Choice(of_entity[0], f"{entity} has no figures{asked}; showing {of_entity[0][1]}.")
    return Choice(books[0], f"There are no figures for {entity}; showing {books[0][0]}.")


@dataclass(frozen=True)
class Bucket:
    """The days one bar stands for, and the book's figures of those days."""

    first: date
    last: date
    rows: tuple[KpiRow, ...]

    @property
    def title(self) -> str:
        if self.first == self.last:
            return self.last.isoformat()
        return f"{self.first.isoformat()} to {self.last.isoformat()}"


def buckets(rows: Sequence[KpiRow], last: date, days: int) -> list[Bucket]:
    """The `days` days to `last`, a day a bucket or, from WEEKLY_FROM days, a week (the first
    week may begin before the period: its days before it hold no figures)."""
    step = 7 if days >= WEEKLY_FROM else 1
    count = -(-days // step)  # ceiling division
    start = last - timedelta(days=count * step - 1)
    by_day = {r.day: r for r in rows}
    out = []
    for i in range(count):
        first = start + timedelta(days=i * step)
        span = [first + timedelta(days=d) for d in range(step)]
        out.append(Bucket(first, span[-1], tuple(by_day[d] for d in span if d in by_day)))
    return out


def _label(bucket: Bucket) -> str:
    return bucket.last.strftime("%d %b")


def flow_chart(bars: Sequence[Bucket], currency: str) -> Plot:
    columns = [
        Column(
            _label(b),
            b.title,
            (
                sum((r.bookings for r in b.rows), ZERO),
                sum((r.net_billings for r in b.rows), ZERO),
                sum((r.collections for r in b.rows), ZERO),
            ),
        )
        for b in bars
    ]
    return grouped(columns, FLOWS, currency)


def aging_chart(bars: Sequence[Bucket], names: Sequence[str], currency: str) -> Plot:
    """The receivable as of each bar's last day with figures (a balance, not a sum)."""
    columns = [
        Column(
            _label(b),
            f"as of {b.rows[-1].day.isoformat()}" if b.rows else b.title,
            b.rows[-1].aging if b.rows else tuple(ZERO for _ in names),
        )
        for b in bars
    ]
    return stacked(columns, list(zip(names, AGING_COLOURS, strict=False)), currency)


@dataclass(frozen=True)
class Line:
    """A row of a figures table."""

    label: str
    value: str
    testid: str
    share: str = ""  # of the open AR, for an aging bucket
    colour: str = ""  # its legend colour, if charted
    sub: bool = False  # a part of the line above


def _share(part: Decimal, whole: Decimal) -> str:
    if whole <= 0:
        return ""
    return f"{(part / whole * 100).quantize(Decimal(1))} %"


def latest_lines(row: KpiRow, names: Sequence[str], currency: str) -> list[Line]:
    lines = [Line("Open AR", money(row.open_ar, currency), "kpi-open-ar")]
    for i, (name, amount) in enumerate(zip(names, row.aging, strict=True)):
        colour = AGING_COLOURS[i] if i < len(AGING_COLOURS) else ""
        lines.append(
            Line(
                name + (" days" if name[:1].isdigit() else ""),
                money(amount, currency),
                f"kpi-aging-{i}",
                _share(amount, row.open_ar),
                colour,
                sub=True,
            )
        )
    lines.append(Line("Unapplied cash", money(row.unapplied_cash, currency), "kpi-unapplied-cash"))
    dso = "— (no net billings in 90 days)" if row.dso is None else f"{row.dso:,} days"
    lines.append(Line("DSO, rolling 90 days", dso, "kpi-dso"))
    return lines


def period_lines(rows: Sequence[KpiRow], currency: str) -> list[Line]:
    def total(name: str) -> str:
        return money(sum((getattr(r, name) for r in rows), ZERO), currency)

    return [
        Line("Bookings", total("bookings"), "kpi-bookings", colour="c3"),
        Line("Billings", total("billings"), "kpi-billings"),
        Line("Credits", total("credits"), "kpi-credits"),
        Line("Net billings", total("net_billings"), "kpi-net-billings", colour="c2"),
        Line("Collections", total("collections"), "kpi-collections", colour="c4"),
    ]


def dead_letters(kpis: Kpis, first: date, last: date) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for day, service, n in kpis.dead_letters:
        if first <= day <= last:
            counts[service] += n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class View:
    kpis: Kpis
    entities: list[str]
    currencies: list[str]  # the chosen entity's
    book: Book | None
    note: str
    first: date | None
    last: date | None
    per: str  # what a bar stands for: "day" or "week"
    flows: Plot | None
    aging: Plot | None
    latest: KpiRow | None
    latest_lines: list[Line]
    period_lines: list[Line]
    letters: list[tuple[str, int]]


def last_day(kpis: Kpis) -> date | None:
    """The period's end: the app's latest day with figures or dead letters."""
    days = [r.day for r in kpis.rows] + [d for d, _, _ in kpis.dead_letters]
    return max(days, default=None)


def view(kpis: Kpis, entity: str, currency: str, days: int) -> View:
    books = kpis.books()
    choice = choose(books, entity, currency)
    last = last_day(kpis)
    first = last - timedelta(days=days - 1) if last else None
    rows = sorted(kpis.of(*choice.book), key=lambda r: r.day) if choice.book else []
    rows = [r for r in rows if first is None or r.day >= first]
    flows = aging = None
    if choice.book and last:
        bars = buckets(rows, last, days)
        flows = flow_chart(bars, choice.book[1])
        aging = aging_chart(bars, AGING, choice.book[1])
    latest = rows[-1] if rows else None
    cur = choice.book[1] if choice.book else ""
    return View(
        kpis=kpis,
        entities=sorted({b[0] for b in books}),
        currencies=[b[1] for b in books if choice.book and b[0] == choice.book[0]],
        book=choice.book,
        note=choice.note,
        first=first,
        last=last,
        per="week" if days >= WEEKLY_FROM else "day",
        flows=flows,
        aging=aging,
        latest=latest,
        latest_lines=latest_lines(latest, AGING, cur) if latest else [],
        period_lines=period_lines(rows, cur),
        letters=dead_letters(kpis, first, last) if first and last else [],
    )


@router.get("/kpis")
def kpis_page(page: web.Viewer, entity: str = "", currency: str = "", days: int = 90) -> Response:
    if days not in PERIODS:
        raise HTTPException(400, f"days must be one of {', '.join(map(str, PERIODS))}.")
    entity, currency = entity.strip()[:MAX_NAME], currency.strip().upper()[:MAX_NAME]
    url = page.settings.analytics_url
    context: dict[str, Any] = {"days": days, "periods": PERIODS, "url": url, "start": START}
    try:
        kpis = fetch(page.settings, days)
    except AnalyticsUnavailable as exc:
        return page.render("kpis.html", unavailable=str(exc), kpis=None, view=None, **context)
    if not kpis.ready:  # recovering its counts: what it has so far may be partial
        return page.render("kpis.html", unavailable=None, kpis=kpis, view=None, **context)
    return page.render(
        "kpis.html",
        unavailable=None,
        kpis=kpis,
        view=view(kpis, entity, currency, days),
        **context,
    )
