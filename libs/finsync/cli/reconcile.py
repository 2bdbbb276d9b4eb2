"""`finsync reconcile`: the ledger and the three-way checks; exits 1 on any break."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from finsync.books.printout import print_report
from finsync.cli.arguments import iso_time
from finsync.cli.console import console, say
from finsync.settings import Settings


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.books.reconcile import reconcile

    # Progress goes to stderr when the report itself is JSON on stdout.
    progress = Console(stderr=True).print if args.json else say
    report = reconcile(settings, args.entity, args.since, progress)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(console, report)
    return 1 if report.breaks else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reconcile",
        help="prove the books: control accounts against documents, CRM ↔ billing ↔ ERP",
        description="Exits 1 when anything does not reconcile. A document that a dead letter "
        "explains is listed as held, not as a break.",
    )
    p.add_argument("--entity", help="only this legal entity's ledger and documents")
    p.add_argument(
        "--since",
        type=iso_time,
        help="three-way checks only for documents published or issued since then (all)",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON, for machines")
    p.set_defaults(func=cmd_reconcile)
