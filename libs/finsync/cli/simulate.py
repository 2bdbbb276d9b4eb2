"""`finsync simulate`: play a realistic order-to-cash scenario through the running services."""

from __future__ import annotations

import argparse
from datetime import date

from finsync.cli.arguments import iso_date
from finsync.cli.console import console, say
from finsync.settings import Settings


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.scenario import crm, stages, summary

    scenario = crm.build(args.seed, args.tag, args.as_of, args.accounts)
    outcome = stages.play(settings, scenario, say, timeout=args.timeout)
    return 0 if summary.print_summary(console, settings, outcome) else 1


def _accounts(value: str) -> int:
    from finsync.scenario.crm import MIN_ACCOUNTS

    if not value.isdigit() or int(value) < MIN_ACCOUNTS:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of at least {MIN_ACCOUNTS}")
    return int(value)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "simulate",
        help="play a realistic order-to-cash scenario through the running services",
    )
    s.add_argument("--seed", type=int, default=7, help="same seed, same scenario (7)")
    s.add_argument("--tag", help="id prefix of this run (default: from the seed and the time)")
    s.add_argument("--as-of", type=iso_date, default=date.today(), help="invoice run date (today)")
    s.add_argument("--accounts", type=_accounts, default=200, help="CRM accounts (200)")
    s.add_argument("--timeout", type=float, default=300, help="seconds to wait per stage (300)")
    s.set_defaults(func=cmd_simulate)
