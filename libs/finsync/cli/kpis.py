"""`finsync kpis`: finance-analytics' current figures, as a table per legal entity and currency."""

from __future__ import annotations

import argparse
from decimal import Decimal

from rich.table import Table

from finsync.cli.console import console
from finsync.ops.kpis import AGING, AnalyticsUnavailable, KpiRow, fetch
from finsync.settings import Settings


def _money(v: Decimal) -> str:
    return f"{v:,.2f}"


def _period(rows: list[KpiRow]) -> Table:
    """The period's flows, and where the last day left the balances."""
    last = rows[-1]
    t = Table(
        title=f"{last.legal_entity} {last.currency}: {rows[0].day} to {last.day}",
        title_justify="left",
    )
    t.add_column("figure")
    t.add_column("amount", justify="right")
    for name, value in (
        ("bookings", sum((r.bookings for r in rows), Decimal(0))),
        ("billings", sum((r.billings for r in rows), Decimal(0))),
        ("credits", sum((r.credits for r in rows), Decimal(0))),
        ("net billings", sum((r.net_billings for r in rows), Decimal(0))),
        ("collections", sum((r.collections for r in rows), Decimal(0))),
    ):
        t.add_row(name, _money(value))
    t.add_section()
    t.add_row(f"open AR on {last.day}", _money(last.open_ar))
    for bucket, amount in zip(AGING, last.aging, strict=True):
        t.add_row(f"  {bucket}", _money(amount))
    t.add_row("unapplied cash", _money(last.unapplied_cash))
    t.add_row("DSO (90 days)", "—" if last.dso is None else f"{last.dso} days")
    return t


def _daily(rows: list[KpiRow]) -> Table:
    t = Table(title=f"{rows[0].legal_entity} {rows[0].currency} per day", title_justify="left")
    for column in ("day", "bookings", "net billings", "collections", "open AR", "unapplied"):
        t.add_column(column, justify="left" if column == "day" else "right")
    t.add_column("DSO", justify="right")
    for r in rows:
        t.add_row(
            str(r.day),
            *(_money(v) for v in (r.bookings, r.net_billings, r.collections, r.open_ar)),
            _money(r.unapplied_cash),
            "—" if r.dso is None else str(r.dso),
        )
    return t


def _moved(r: KpiRow) -> bool:
    return any((r.bookings, r.billings, r.credits, r.collections, r.open_ar, r.unapplied_cash))


def cmd_kpis(args: argparse.Namespace, settings: Settings) -> int:
    try:
        kpis = fetch(settings, args.days)
    except AnalyticsUnavailable as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 1
    if not kpis.ready:
        console.print("[yellow]finance-analytics is still recovering: figures may be partial[/]")
    books = [
        b for b in kpis.books() if args.entity in (None, b[0]) and args.currency in (None, b[1])
    ]
    if not books:
        console.print(f"no figures yet ({kpis.events_counted} events counted)")
        return 0
    for book in books:
        rows = kpis.of(*book)
        if not any(_moved(r) for r in rows):
            continue  # nothing in the period and nothing open: a book of another period
        if args.daily:
            console.print(_daily(rows), width=max(console.width, 110))  # whole days, never cut
        else:
            console.print(_period(rows))
    letters: dict[str, int] = {}
    for _, service, n in kpis.dead_letters:
        letters[service] = letters.get(service, 0) + n
    if letters:
        said = ", ".join(f"{s} {n}" for s, n in sorted(letters.items()))
        console.print(f"dead letters over the period: {said}", highlight=False)
    console.print(f"[dim]{kpis.events_counted} events counted[/dim]")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "kpis", help="finance-analytics' figures: bookings, billings, collections, AR aging, DSO"
    )
    s.add_argument("--days", type=int, default=30, help="the period, ending on the last day (30)")
    s.add_argument("--entity", help="one legal entity only")
    s.add_argument("--currency", help="one currency only")
    s.add_argument("--daily", action="store_true", help="a row per day instead of the period")
    s.set_defaults(func=cmd_kpis)
