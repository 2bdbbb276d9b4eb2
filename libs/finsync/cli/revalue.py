"""`finsync erp revalue`: open foreign AR at a period-end rate, an unrealised FX journal per
entity and currency, reversed on the first day of the next period."""

from __future__ import annotations

import argparse
from datetime import date

from rich.table import Table

from finsync.cli.console import console
from finsync.settings import Settings


def cmd_revalue(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.accounting import fmt
    from finsync.errors import DependencyNotReady
    from finsync.reference.erp.revaluation import revalue
    from finsync.runtime import db

    with db.connect(settings) as conn:
        try:
            with conn.transaction():
                done = revalue(conn, args.as_of, args.entity, args.dry_run)
        except DependencyNotReady as e:
            console.print(f"[red]{e}[/red]", highlight=False)
            return 1
    table = Table(
        title=f"FX revaluation as of {args.as_of}" + (" (dry run)" if args.dry_run else "")
    )
    for column in (
        "entity",
        "currency",
        "items",
        "open",
        "rate",
        "booked",
        "revalued",
        "gain/loss",
        "",
    ):
        table.add_column(column)
    for d in done:
        r = d.revaluation
        f = r.functional_currency
        table.add_row(
            r.legal_entity, r.currency, str(r.items), fmt(r.open_amount, r.currency),
            f"{r.rate.normalize():f}", fmt(r.booked, f), fmt(r.revalued, f),
            fmt(r.difference, f), d.outcome,
        )  # fmt: skip
    console.print(table if done else "no open AR in a foreign currency")
    return 0


def register(erp: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = erp.add_parser("revalue", help="revalue open foreign AR at the as-of rate")
    p.add_argument("--as-of", required=True, type=date.fromisoformat, help="e.g. 2026-03-31")
    p.add_argument("--entity", help="one legal entity (default: all)")
    p.add_argument("--dry-run", action="store_true", help="show what it would post")
    p.set_defaults(func=cmd_revalue)
