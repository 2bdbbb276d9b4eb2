"""`finsync erp period`: close, open and list a legal entity's accounting periods."""

from __future__ import annotations

import argparse
from datetime import date

import psycopg
from rich.table import Table

from finsync.cli.console import console
from finsync.settings import Settings

# Postings in flight held the entity's period lock past the lock timeout, or a posting waiting
# behind this close waited on another that held the lock too (PostgreSQL ended this side).
_LOST_RACE = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)


def month(value: str) -> date:
    from finsync.domain.periods import parse

    try:
        return parse(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a month such as 2026-03") from None


def cmd_close(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.books import close
    from finsync.runtime import db

    with db.connect(settings) as conn:
        try:
            result = close.close(conn, args.entity, args.period, settings.operator)
        except _LOST_RACE:
            return _busy(args.entity)
    if result.outcome is close.Outcome.REFUSED:
        console.print(f"[red]{result}:[/red]", highlight=False)
        for blocker in result.blockers:
            console.print(f"  - {blocker}", highlight=False)
        return 1
    console.print(f"{result}", highlight=False)
    return 0


def cmd_open(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.books import close
    from finsync.runtime import db

    with db.connect(settings) as conn:
        try:
            result = close.reopen(conn, args.entity, args.period, settings.operator)
        except _LOST_RACE:
            return _busy(args.entity)
    console.print(f"{result}", highlight=False)
    return 0


def _busy(entity: str) -> int:
    console.print(
        f"[red]postings of {entity} kept its periods busy; nothing changed, try again[/red]",
        highlight=False,
    )
    return 1


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.periods import label
    from finsync.reference.erp import periods
    from finsync.runtime import db

    with db.connect(settings) as conn:
        rows = periods.listing(conn, args.entity)
    if not rows:
        scope = f"of {args.entity} " if args.entity else ""
        console.print(f"no period {scope}was ever closed: every period is open")
        return 0
    table = Table("entity", "period", "status", "changed", "by", title="Accounting periods")
    for r in rows:
        status = "[red]CLOSED[/red]" if r.status == "CLOSED" else "[green]OPEN[/green]"
        changed = r.changed_at.astimezone().strftime("%Y-%m-%d %H:%M")
        table.add_row(r.legal_entity, label(r.period), status, changed, r.changed_by)
    console.print(table)
    console.print("[dim]a period not listed is open[/dim]")
    return 0


def register(erp: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = erp.add_parser(
        "period", help="close, open and list accounting periods per legal entity"
    ).add_subparsers(dest="period_action", required=True)
    s = p.add_parser(
        "close",
        help="close a month: documents dated in it then post in the next open month",
        description="Refused, with exit code 1 and what blocks it, while revenue recognition "
        "has not run for the month or left any of it unreleased, or billing issued documents "
        "dated in it or before that the ERP has not posted.",
    )
    s.add_argument("entity", help="legal entity, e.g. ACME-DE")
    s.add_argument("period", type=month, help="the month, e.g. 2026-03")
    s.set_defaults(func=cmd_close)
    s = p.add_parser("open", help="open a closed month again (audited)")
    s.add_argument("entity", help="legal entity, e.g. ACME-DE")
    s.add_argument("period", type=month, help="the month, e.g. 2026-03")
    s.set_defaults(func=cmd_open)
    s = p.add_parser("list", help="the periods ever closed, and their status")
    s.add_argument("entity", nargs="?", help="only this legal entity")
    s.set_defaults(func=cmd_list)
