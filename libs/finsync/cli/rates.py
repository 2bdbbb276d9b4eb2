"""`finsync erp rates`: the reference ERP's FX rates — loaded from a CSV file, and listed."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import psycopg
from rich.table import Table

from finsync.cli.console import console, refused
from finsync.settings import Settings


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.fx_rates_file import RatesInvalid, parse
    from finsync.reference.erp import fx
    from finsync.runtime import db

    path: Path = args.file
    try:
        rates = parse(path.read_text(encoding="utf-8"))
        with db.connect(settings) as conn:
            conn.execute("SET LOCAL lock_timeout = '30s'")
            plan = fx.load(conn, rates)
            if plan.refused or args.dry_run:
                conn.rollback()
    except OSError as exc:
        return refused(path, [f"cannot be read: {exc.strerror or exc}"])
    except RatesInvalid as exc:
        return refused(path, exc.errors)
    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
        return refused(path, ["postings kept the rates busy; try again"])
    if plan.refused:
        return refused(path, plan.refused)
    for before, after in plan.changed:
        console.print(
            f"{after.from_currency}->{after.to_currency} on {after.rate_date}: "
            f"{before.rate.normalize():f} -> {after.rate.normalize():f}",
            highlight=False,
        )
    done = "would load" if args.dry_run else "loaded"
    console.print(
        f"FX rates {done} from {path}: {len(plan.added)} added, {len(plan.changed)} changed, "
        f"{len(plan.unchanged)} unchanged" + ("; dry run: nothing changed" if args.dry_run else ""),
        highlight=False,
    )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.reference.erp import fx
    from finsync.runtime import db

    with db.connect(settings) as conn:
        rows = fx.listing(conn, args.from_, args.to, args.on)
    table = Table("date", "from", "to", "rate", "loaded", "used by", title="FX rates")
    for x in rows:
        r = x.rate
        loaded = f"{x.loaded_at.astimezone():%Y-%m-%d %H:%M}" if x.loaded_at else "(inverse)"
        table.add_row(
            str(r.rate_date),
            r.from_currency,
            r.to_currency,
            f"{r.rate.normalize():f}",
            loaded,
            f"{x.used} journal(s)" if x.used else "",
        )
    if rows:
        console.print(table)
    else:
        console.print("no FX rates" + (" on that day" if args.on else ""))
    console.print(
        "[dim]a journal uses the rate of the latest date on or before its own; else the "
        "inverse of the other direction's[/dim]"
    )
    return 0


def register(erp: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = erp.add_parser(
        "rates", help="FX rates: what journals in another currency are converted at"
    ).add_subparsers(dest="rates_action", required=True)
    s = r.add_parser("list", help="the loaded rates")
    s.add_argument("--from", dest="from_", metavar="CURRENCY", help="only rates from it")
    s.add_argument("--to", metavar="CURRENCY", help="only rates to it")
    s.add_argument(
        "--on",
        type=date.fromisoformat,
        metavar="DATE",
        help="only each pair's rate in force that day (with --from and --to: or the inverse)",
    )
    s.set_defaults(func=cmd_list)
    s = r.add_parser(
        "load",
        help="add or change rates from a CSV file (date,from,to,rate), checked first; all or "
        "nothing",
        description="Each row is one unit of `from` in `to` from that date on. Any problem "
        "(a bad date, currency or rate, a duplicate row, a rate a posted journal used that "
        "would change) is listed, with exit code 1, and nothing changes. See "
        "deploy/fx-rates.sample.csv.",
    )
    s.add_argument("file", type=Path, help="the rates file, e.g. deploy/fx-rates.sample.csv")
    s.add_argument("--dry-run", action="store_true", help="check the file and show the changes")
    s.set_defaults(func=cmd_load)
