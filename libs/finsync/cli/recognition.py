"""`finsync erp recognize`: release deferred revenue of the months that have ended."""

from __future__ import annotations

import argparse

from rich.progress import Progress

from finsync.cli.arguments import iso_date
from finsync.cli.console import console
from finsync.settings import Settings


def cmd_recognize(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.accounting import fmt
    from finsync.reference.erp import recognition

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("revenue recognition", total=None)
        result = recognition.recognize(
            settings,
            args.through,
            args.entity,
            lambda n, total: bar.update(task, completed=n, total=total),
        )
    for m in result.months:
        what = (
            f"released {fmt(m.amount, m.currency)} from {m.rows} schedule row(s), "
            f"journal {m.entry_id}"
            if m.released
            else "nothing to release"
        )
        console.print(f"{m.legal_entity} {m.currency} {m.period:%Y-%m}: {what}", highlight=False)
    released = [m for m in result.months if m.released]
    console.print(
        f"revenue recognition through {args.through}: {len(result.months)} month(s) run, "
        f"{len(released)} journal(s) posted, {result.published} event(s) published",
        highlight=False,
    )
    return 0


def register(erp: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = erp.add_parser(
        "recognize",
        help="release deferred revenue of every month ended by a date, once",
        description="Release the revenue schedules of every month that ends on or before "
        "--through and is not released yet: one journal per legal entity, currency and month "
        "(debit deferred revenue, credit revenue), dated the month's last day. Running it "
        "again releases nothing new.",
    )
    s.add_argument(
        "--through", type=iso_date, required=True, help="release months ending by this date"
    )
    s.add_argument(
        "--entity",
        help="only this legal entity; its last month ended by --through is recorded as run "
        "even when it has nothing to release",
    )
    s.set_defaults(func=cmd_recognize)
