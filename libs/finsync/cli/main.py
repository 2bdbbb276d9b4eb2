"""The `finsync` command: stack, services, publishing and dead letters."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from finsync.contract.topics import SERVICES
from finsync.errors import Outage
from finsync.runtime import db, dlq, outbox, provision
from finsync.runtime.serde import registry_client
from finsync.settings import Settings
from finsync.stack.process import StackError

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes


def _say(text: str) -> None:
    console.print(f"[dim]·[/dim] {text}")


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from finsync import stack

    if args.action == "up":
        stack.up(settings, _say)
    elif args.action == "down":
        stack.down(settings)
    parts = stack.status(settings)
    for name, healthy, text in parts:
        mark = "[green]up[/green]" if healthy else "[red]down[/red]"
        console.print(f"{name:<9} {mark}  {text}")
    wanted = {"up": True, "down": False}.get(args.action)
    return 0 if wanted is None or all(h == wanted for _, h, _ in parts) else 1


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = db.migrate(settings)
    console.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    created = provision.create_topics(settings, _say)
    console.print(f"created {len(created)} topics" if created else "all topics exist")
    return 0


def cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    problems = provision.check_and_register(registry_client(settings), register=not args.check_only)
    for p in problems:
        console.print(f"[red]✗[/red] {p.subject}: {p.reason}")
    if problems:
        console.print(
            "Schema changes must stay BACKWARD compatible: add fields with defaults, "
            "do not remove or retype fields without a migration."
        )
        return 1
    console.print(f"[green]✓[/green] all schemas are {provision.COMPATIBILITY} compatible")
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.cli.publish import publish

    n = publish(settings, args.topic, Path(args.file))
    console.print(f"published {n} event(s) to {args.topic}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.runtime import runner

    runner.run(args.service, settings)
    return 0


def cmd_outbox(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.reference.billing.jobs import PUBLISHER

    with db.connect(settings) as conn:
        backlog = outbox.backlog(conn)
    for service in (*SERVICES, PUBLISHER):
        console.print(f"{service:<24} {backlog.get(service, 0)} unsent")
    return 0


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


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from finsync.scenario import simulation, summary

    scenario = simulation.build(args.seed, args.tag, args.as_of, args.accounts)
    outcome = simulation.play(settings, scenario, _say, timeout=args.timeout)
    return 0 if summary.print_summary(console, settings, outcome) else 1


def _letters(args: argparse.Namespace, settings: Settings) -> list[dlq.DeadLetter]:
    services = [args.service] if args.service else list(SERVICES)
    keep = dlq.Filter(error=args.error, since=args.since, until=args.until, key=args.key)
    return [letter for s in services for letter in dlq.read(settings, s) if keep(letter)]


def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    letters = _letters(args, settings)
    table = Table("service", "at", "partition:offset", "key", "error", "attempts", "reason")
    for x in letters:
        at = x.failed_at.strftime("%Y-%m-%d %H:%M:%S") if x.failed_at else ""
        table.add_row(
            x.service,
            at,
            f"{x.record.partition}:{x.record.offset}",
            x.record.key_text or "",
            x.error_class,
            str(x.attempts),
            x.reason[:120],
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")
    return 0


def cmd_dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    partition, offset = args.position
    for x in dlq.read(settings, args.service):
        if (x.record.partition, x.record.offset) == (partition, offset):
            console.print(
                f"[bold]{x.service}.dlq {partition}:{offset}[/bold]  key={x.record.key_text}"
            )
            for k, v in x.record.headers:
                console.print(f"  {k}: {(v or b'').decode('utf-8', 'replace')}")
            console.print(f"  value: {len(x.record.value or b'')} bytes")
            return 0
    console.print(f"no dead letter at {args.service}.dlq {partition}:{offset}")
    return 1


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    letters = _letters(args, settings)
    if not letters:
        console.print("nothing to replay")
        return 0
    verb = "would replay" if args.dry_run else "replaying"
    console.print(f"{verb} {len(letters)} dead letter(s) at most {args.rate}/s")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("replay", total=len(letters))
        results = dlq.replay(
            settings,
            letters,
            by=args.by,
            dry_run=args.dry_run,
            rate_per_second=args.rate,
            progress=lambda n: bar.update(task, completed=n),
        )
    failed = [r for r in results if r.outcome.startswith("failed")]
    for r in results:
        console.print(
            f"  {r.letter.service} {r.letter.record.partition}:{r.letter.record.offset} "
            f"key={r.letter.record.key_text} -> {r.outcome}"
        )
    console.print(f"{len(results) - len(failed)} ok, {len(failed)} failed; audit recorded")
    return 1 if failed else 0


def _position(value: str) -> tuple[int, int]:
    try:
        partition, offset = value.split(":")
        return int(partition), int(offset)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not PARTITION:OFFSET (as `dlq list` shows it, e.g. 0:17)"
        ) from None


def _accounts(value: str) -> int:
    from finsync.scenario.simulation import MIN_ACCOUNTS

    if not value.isdigit() or int(value) < MIN_ACCOUNTS:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of at least {MIN_ACCOUNTS}")
    return int(value)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date such as 2026-11-30") from None


def _time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time such as 2026-11-27 or 2026-11-27T09:30"
        ) from None
    return t if t.tzinfo else t.astimezone()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="finsync", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stack", help="the embedded local stack (PostgreSQL, registry, Kafka)")
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(func=cmd_stack)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("topics", help="create missing topics").set_defaults(func=cmd_topics)
    s = sub.add_parser("schemas", help="register schemas/*.avsc with BACKWARD compatibility")
    s.add_argument("--check-only", action="store_true", help="check, register nothing")
    s.set_defaults(func=cmd_schemas)

    s = sub.add_parser("publish", help="validate a JSON event (or array) and publish it as Avro")
    s.add_argument("topic")
    s.add_argument("file")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("run", help="run a service (consumer + outbox relay) until SIGTERM")
    s.add_argument("service", choices=SERVICES)
    s.set_defaults(func=cmd_run)

    sub.add_parser("outbox", help="unsent outbox messages per service").set_defaults(
        func=cmd_outbox
    )

    b = sub.add_parser("billing", help="the reference billing system's jobs").add_subparsers(
        dest="action", required=True
    )
    s = b.add_parser("run-invoices", help="issue and publish every invoice due by a date, once")
    s.add_argument("--as-of", type=_date, required=True, help="bill periods starting by this date")
    s.set_defaults(func=cmd_billing_run)
    s = b.add_parser("credit-memo", help="credit one invoice line in full and publish it")
    s.add_argument("invoice")
    s.add_argument("line", help="the invoice line id")
    s.add_argument("--reason", default="credited on request")
    s.add_argument("--issued-on", type=_date, help="issue date (today)")
    s.set_defaults(func=cmd_billing_credit)

    s = sub.add_parser(
        "simulate",
        help="play a realistic order-to-cash scenario through the running services",
    )
    s.add_argument("--seed", type=int, default=7, help="same seed, same scenario (7)")
    s.add_argument("--tag", help="id prefix of this run (default: from the seed and the time)")
    s.add_argument("--as-of", type=_date, default=date.today(), help="invoice run date (today)")
    s.add_argument("--accounts", type=_accounts, default=200, help="CRM accounts (200)")
    s.add_argument("--timeout", type=float, default=300, help="seconds to wait per stage (300)")
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser("dlq", help="inspect and replay dead letters").add_subparsers(
        dest="action", required=True
    )
    for name, func in (("list", cmd_dlq_list), ("replay", cmd_dlq_replay)):
        s = d.add_parser(name)
        s.add_argument("--service", choices=SERVICES)
        s.add_argument(
            "--error",
            help="exception class (InvalidEvent) or class of error (permanent, retries-exhausted)",
        )
        s.add_argument("--since", type=_time, help="failed at or after (ISO-8601)")
        s.add_argument("--until", type=_time, help="failed before (ISO-8601)")
        s.add_argument("--key", help="message key (the business id)")
        s.set_defaults(func=func)
        if name == "replay":
            s.add_argument("--dry-run", action="store_true", help="show what would be replayed")
            s.add_argument("--rate", type=float, default=50.0, help="messages per second (50)")
            s.add_argument("--by", help="who replays, for the audit (default: login name)")
    s = d.add_parser("show")
    s.add_argument("service", choices=SERVICES)
    s.add_argument("position", type=_position, help="PARTITION:OFFSET on the dead-letter topic")
    s.set_defaults(func=cmd_dlq_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        code: int = args.func(args, settings)
    except StackError as exc:
        console.print(f"[red]stack error:[/red] {exc}")
        return 1
    except Outage as exc:
        console.print(f"[red]{exc}[/red]\nIs the stack running? Try `finsync stack status`.")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
