"""`finsync billing`: the reference billing system's jobs — the invoice run and credit memos."""

from __future__ import annotations

import argparse
from datetime import date

from rich.progress import Progress

from finsync.cli.arguments import iso_date
from finsync.cli.console import console
from finsync.settings import Settings


def cmd_billing_run(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.reference.billing import jobs as billing_jobs

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("invoice run", total=None)
        result = billing_jobs.run_invoices(
            settings, args.as_of, lambda n, total: bar.update(task, completed=n, total=total)
        )
    console.print(
        f"invoice run as of {args.as_of}: {result.subscriptions} subscription(s) due, "
        f"{len(result.invoices)} invoice(s) issued, {result.published} event(s) published"
    )
    return 0


def cmd_billing_credit(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.domain.accounting import fmt
    from finsync.reference.billing import jobs as billing_jobs

    try:
        memo = billing_jobs.issue_credit_memo(
            settings, args.invoice, args.line, args.reason, args.issued_on or date.today()
        )
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    console.print(f"credit memo {memo.credit_memo_id} for {fmt(memo.total, memo.currency)} issued")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("billing", help="the reference billing system's jobs").add_subparsers(
        dest="action", required=True
    )
    s = b.add_parser("run-invoices", help="issue and publish every invoice due by a date, once")
    s.add_argument(
        "--as-of", type=iso_date, required=True, help="bill periods starting by this date"
    )
    s.set_defaults(func=cmd_billing_run)
    s = b.add_parser("credit-memo", help="credit one invoice line in full and publish it")
    s.add_argument("invoice")
    s.add_argument("line", help="the invoice line id")
    s.add_argument("--reason", default="credited on request")
    s.add_argument("--issued-on", type=iso_date, help="issue date (today)")
    s.set_defaults(func=cmd_billing_credit)
