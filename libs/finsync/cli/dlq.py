"""`finsync dlq`: list, show and replay dead letters."""

from __future__ import annotations

import argparse

from rich.progress import Progress
from rich.table import Table

from finsync.cli.arguments import iso_time
from finsync.cli.console import console
from finsync.contract.topics import SERVICES
from finsync.runtime import dlq
from finsync.settings import Settings


def _letters(args: argparse.Namespace, settings: Settings) -> list[dlq.DeadLetter]:
    services = [args.service] if args.service else list(SERVICES)
    keep = dlq.Filter(error=args.error, since=args.since, until=args.until, key=args.key)
    return [letter for s in services for letter in dlq.read(settings, s) if keep(letter)]


def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    letters = _letters(args, settings)
    columns = ("service", "at", "partition:offset", "key", "error", "attempts", "waited", "reason")
    rows = [
        (
            x.service,
            x.failed_at.strftime("%Y-%m-%d %H:%M:%S") if x.failed_at else "",
            f"{x.record.partition}:{x.record.offset}",
            x.record.key_text or "",
            x.error_class,
            str(x.attempts),
            _duration(x.waited_seconds),
            x.reason,
        )
        for x in letters
    ]
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row[:-1], row[-1][:120])
        console.print(table)
    else:  # piped: one whole line per dead letter, tab-separated, for grep and cut
        for row in (columns, *rows):
            print("\t".join(value.replace("\t", " ").replace("\n", " ") for value in row))
    console.print(f"{len(letters)} dead letter(s)")
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        s.add_argument("--since", type=iso_time, help="failed at or after (ISO-8601)")
        s.add_argument("--until", type=iso_time, help="failed before (ISO-8601)")
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
