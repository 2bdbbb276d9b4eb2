"""`finsync run` and `outbox`: a service in the foreground, and what the outboxes have not sent."""

from __future__ import annotations

import argparse
import importlib

from finsync.cli.console import console
from finsync.contract.topics import ANALYTICS, SERVICES
from finsync.runtime import db, outbox
from finsync.settings import Settings


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if args.service == ANALYTICS:  # a faust-streaming app, not a consumer service
        importlib.import_module("services.finance_analytics.main").run(settings)
        return 0
    from finsync.runtime import runner

    runner.run(args.service, settings)
    return 0


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.reference.billing.jobs import PUBLISHER

    with db.connect(settings) as conn:
        backlog, failed = outbox.backlog(conn), outbox.failed(conn)
    for service in (*SERVICES, PUBLISHER):
        refused = failed.get(service, 0)
        note = f", [red]{refused} refused by Kafka[/red] (finsync.outbox.error)" if refused else ""
        console.print(f"{service:<24} {backlog.get(service, 0)} unsent{note}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "run", help="run a service (consumer + outbox relay), or finance-analytics, until SIGTERM"
    )
    s.add_argument("service", choices=(*SERVICES, ANALYTICS))
    s.set_defaults(func=cmd_run)

    sub.add_parser("outbox", help="unsent, and refused, outbox messages per service").set_defaults(
        func=cmd_outbox
    )
