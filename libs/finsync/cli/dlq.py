"""`finsync dlq`: list, show, replay, resolve, reopen, assign and note dead letters, all on the
dead-letter index (finsync.dead_letters); `reindex` backfills the index from the topics."""

from __future__ import annotations

import argparse
import json
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from rich.progress import Progress
from rich.table import Table

from finsync.cli.arguments import iso_time
from finsync.cli.console import console
from finsync.contract.topics import SERVICES, dlq_topic
from finsync.ops import dead_letters as dl
from finsync.ops import replay as rp
from finsync.runtime import clients, db, dead_letter_index
from finsync.settings import Settings


@contextmanager
def _index(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection to the database that holds the index, or a clear word why not."""
    with db.connect(settings) as conn:
        try:
            yield conn
        except psycopg.errors.UndefinedTable:
            raise SystemExit(
                "the dead-letter index is not in this database yet: run `finsync migrate`"
            ) from None


def _query(args: argparse.Namespace) -> dl.Query:
    return dl.Query(
        service=args.service,
        error=args.error,
        key=args.key,
        since=args.since,
        until=args.until,
        status=args.status,
    )


def _when(letter: dl.Letter) -> str:
    return letter.failed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _position(letter: dl.Letter) -> str:
    if letter.dlq_partition is None:
        return "(unsent)"
    return f"{letter.dlq_partition}:{letter.dlq_offset}"


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]], wide: int = 120) -> None:
    """A rich table on a terminal; piped, one tab-separated line per row for grep and cut."""
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row[:-1], row[-1][:wide])
        console.print(table)
    else:
        for row in (columns, *rows):
            print("\t".join(value.replace("\t", " ").replace("\n", " ") for value in row))


def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    q = _query(args)
    with _index(settings) as conn:
        letters = dl.search(conn, q, limit=args.limit, before_id=args.before)
        total, capped = dl.count(conn, q)
    columns = ("id", "service", "failed at", "key", "error", "status", "tries", "dlq", "reason")
    _table(
        columns,
        [
            (
                str(x.id),
                x.service,
                _when(x),
                x.message_key or "",
                x.error_class,
                x.status + (f" ({x.replays} replays failed)" if x.replays else ""),
                str(x.attempts),
                _position(x),
                x.reason,
            )
            for x in letters
        ],
    )
    if len(letters) == total and args.before is None:
        console.print(f"{total} dead letter(s)")
    else:
        more = f"more than {total:,}" if capped else f"{total:,}"
        console.print(f"{len(letters)} of {more} dead letter(s) shown", highlight=False)
        if letters and len(letters) == args.limit:
            console.print(f"next page: --before {letters[-1].id}", highlight=False)
    return 0


def cmd_dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    with _index(settings) as conn:
        d = dl.detail(conn, settings, args.id)
    if d is None:
        console.print(f"no dead letter {args.id} in the index")
        return 1
    x = d.letter
    say = console.print
    say(f"[bold]dead letter {x.id}[/bold]  {x.service}  key={x.message_key}  status={x.status}")
    fields = [
        ("dead-letter topic", f"{x.dlq_topic} {_position(x)}"),
        ("from", f"{x.source_topic} {x.source_partition}:{x.source_offset}  stage {x.stage}"),
        ("error", f"{x.error_class} ({x.category}) after {x.attempts} attempt(s)"),
        ("failed at", _when(x)),
        ("event id", x.event_id or ""),
        ("trace id", x.trace_id or ""),
        ("assignee", x.assignee or ""),
        ("replays failed", str(x.replays)),
        ("a replay of", str(x.replay_of or "")),
    ]
    for name, value in fields:
        if value:
            say(f"  {name}: {value}", markup=False, highlight=False)
    say("[bold]reason[/bold]")
    say(f"  {x.reason}", markup=False)
    if x.notes:
        say("[bold]notes[/bold]")
        for line in x.notes.splitlines():
            say(f"  {line}", markup=False)
    say(f"[bold]value[/bold] ({d.value_size} bytes)")
    if d.payload.data is not None:
        say(f"  schema id {d.payload.schema_id}")
        say(json.dumps(d.payload.data, indent=2, ensure_ascii=False), markup=False)
    else:
        say(f"  {d.payload.note}", markup=False)
    say("[bold]publisher headers[/bold]")
    for k, v in d.headers:
        say(f"  {k}: {v}", markup=False)
    say("[bold]stack[/bold]")
    say(d.stack, markup=False, highlight=False)
    say("[bold]history[/bold]")
    for h in d.history:
        what = ", ".join(f"{k}={v}" for k, v in h.detail.items())
        when = h.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        say(f"  {when}  {h.actor}  {h.action}  {what}", markup=False, highlight=False)
    for title, letters in (
        ("replay chain (the letters it is a replay of)", d.ancestors),
        ("its replays that failed again", d.children),
        ("other letters of its key", d.same_key),
    ):
        if letters:
            say(f"[bold]{title}[/bold]")
            for o in letters:
                say(f"  {o.id}  {_when(o)}  {o.error_class}  {o.status}", highlight=False)
    return 0


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    by_filter = any(
        getattr(args, f) is not None
        for f in ("service", "error", "key", "since", "until", "status")
    )
    if bool(args.ids) == by_filter:
        raise SystemExit("name dead letters by id, or filter them (--service, --error, ...)")
    verb = "would replay" if args.dry_run else "replaying"
    with Progress(console=console, transient=True) as bar, _ctrl_c_stops() as ctrl_c:
        task = bar.add_task(verb, total=None)
        result = rp.replay(
            settings,
            reason=args.reason,
            actor=args.by or settings.operator,
            ids=args.ids or None,
            query=None if args.ids else _query(args),
            dry_run=args.dry_run,
            rate_per_second=args.rate,
            force=args.force,
            limit=args.limit,
            progress=lambda n: bar.update(task, completed=n),
            cancelled=ctrl_c.stops,
        )
    results = result.results
    if not results:
        console.print("nothing to replay")
        return 0
    _table(
        ("id", "service", "key", "error", "outcome"),
        [
            (
                str(r.letter.id),
                r.letter.service,
                r.letter.message_key or "",
                r.letter.error_class,
                r.outcome,
            )
            for r in results
        ],
    )
    kinds = Counter(r.outcome.split(":", 1)[0] for r in results)
    taken = kinds.pop("replayed", 0) + kinds.pop("would-replay", 0)
    failed = kinds.pop("failed", 0)
    summary = [f"{taken} {verb.replace('replaying', 'replayed')}"]
    summary += [f"{kinds.pop('refused', 0)} refused", f"{failed} failed"]
    summary += [f"{n} {kind}" for kind, n in kinds.items()]  # unknown, cancelled
    console.print(f"{', '.join(summary)}; replay {result.replay_id} audited", highlight=False)
    if result.more:
        console.print(f"more letters match than --limit {args.limit}: run it again for the rest")
    if kinds.get("cancelled"):  # only a Ctrl-C cancels here
        return 130  # as a shell reports a command stopped by Ctrl-C
    return 1 if failed or kinds.get("unknown") else 0


class _CtrlC:
    """The first Ctrl-C stops a replay before its next chunk: what it handed to Kafka is still
    recorded, the rest stays as it was ("cancelled: not sent"), and no letter is caught between
    being claimed and being sent. A second Ctrl-C interrupts it at once."""

    def __init__(self) -> None:
        self.pressed = self._told = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True  # nothing more here: the console may be mid-write

    def stops(self) -> bool:
        """Asked by the replay before each chunk."""
        if self.pressed and not self._told:
            self._told = True
            console.print("Ctrl-C: stopping; the letters not sent stay as they were")
        return self.pressed


@contextmanager
def _ctrl_c_stops() -> Iterator[_CtrlC]:
    ctrl_c = _CtrlC()
    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_dlq_resolve(args: argparse.Namespace, settings: Settings) -> int:
    with _index(settings) as conn:
        done = dl.resolve(conn, args.ids, args.note, args.by or settings.operator)
    return _changed("resolved", args.ids, done)


def cmd_dlq_reopen(args: argparse.Namespace, settings: Settings) -> int:
    with _index(settings) as conn:
        done = dl.reopen(conn, args.ids, args.note or "", args.by or settings.operator)
    return _changed("reopened", args.ids, done)


def cmd_dlq_assign(args: argparse.Namespace, settings: Settings) -> int:
    with _index(settings) as conn:
        done = dl.assign(conn, args.ids, args.to or None, args.by or settings.operator)
    return _changed(f"assigned to {args.to or 'nobody'}", args.ids, done)


def cmd_dlq_note(args: argparse.Namespace, settings: Settings) -> int:
    with _index(settings) as conn:
        done = dl.note(conn, args.id, args.text, args.by or settings.operator)
    return _changed("noted", [args.id], [args.id] if done else [])


def _changed(what: str, asked: list[int], done: list[int]) -> int:
    console.print(f"{len(done)} dead letter(s) {what}", highlight=False)
    untouched = sorted(set(asked) - set(done))
    if untouched:
        console.print(
            f"unchanged (no such letter, or {what} already): {', '.join(map(str, untouched))}",
            highlight=False,
        )
    return 0


def cmd_dlq_reindex(args: argparse.Namespace, settings: Settings) -> int:
    """Backfill the index from the topics: letters written before it existed, or sent there
    by other tools. Letters it holds already (by topic, partition and offset) are skipped."""
    services = [args.service] if args.service else list(SERVICES)
    total = 0
    with _index(settings) as conn, Progress(console=console) as bar:
        for service in services:
            task = bar.add_task(f"{service}", total=None)
            read = added = 0
            batch = []
            try:
                for record in clients.read(settings, dlq_topic(service)):
                    batch.append(record)
                    if len(batch) >= 500:
                        added += dead_letter_index.backfill(conn, service, batch)
                        conn.commit()
                        read += len(batch)
                        batch = []
                        bar.update(task, completed=read, description=f"{service}: {added} new")
            except LookupError:
                bar.update(task, description=f"{service}: no dead-letter topic")
                continue
            added += dead_letter_index.backfill(conn, service, batch)
            conn.commit()
            read += len(batch)
            bar.update(task, completed=read, total=read, description=f"{service}: {added} new")
            total += added
    console.print(f"{total} dead letter(s) added to the index")
    return 0


Command = Callable[[argparse.Namespace, Settings], int]


def _plainly(func: Command) -> Command:
    """A refused request (no reason given, no such letter) is a sentence, not a traceback."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return func(args, settings)
        except (ValueError, LookupError) as exc:
            raise SystemExit(str(exc)) from None

    return run


def _filters(s: argparse.ArgumentParser) -> None:
    s.add_argument("--service", choices=SERVICES)
    s.add_argument(
        "--error",
        help="exception class (InvalidEvent) or class of error (permanent, retries-exhausted)",
    )
    s.add_argument("--since", type=iso_time, help="failed at or after (ISO-8601)")
    s.add_argument("--until", type=iso_time, help="failed before (ISO-8601)")
    s.add_argument("--key", help="message key (the business id)")
    s.add_argument("--status", choices=dl.STATUSES)


def _by(s: argparse.ArgumentParser) -> None:
    s.add_argument("--by", help="who acts, for the audit (default: FINSYNC_OPERATOR or login)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("dlq", help="inspect, replay and resolve dead letters").add_subparsers(
        dest="action", required=True
    )
    s = d.add_parser("list", help="dead letters, newest first")
    _filters(s)
    s.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    s.add_argument("--before", type=int, metavar="ID", help="the page after this id")
    s.set_defaults(func=_plainly(cmd_dlq_list))

    s = d.add_parser("show", help="one dead letter: value, headers, stack, history")
    s.add_argument("id", type=int)
    s.set_defaults(func=_plainly(cmd_dlq_show))

    s = d.add_parser("replay", help="send dead letters back through their retry topic")
    s.add_argument("ids", type=int, nargs="*", metavar="ID")
    _filters(s)
    s.add_argument("--reason", required=True, help="why they should go through now")
    s.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    s.add_argument("--rate", type=float, default=50.0, help="messages per second (50)")
    s.add_argument("--force", action="store_true", help="past the loop guard, and resolved")
    s.add_argument("--limit", type=int, default=10000, help="at most this many (10000)")
    _by(s)
    s.set_defaults(func=_plainly(cmd_dlq_replay))

    s = d.add_parser("resolve", help="close dead letters that need nothing more")
    s.add_argument("ids", type=int, nargs="+", metavar="ID")
    s.add_argument("--note", required=True, help="how they were dealt with")
    _by(s)
    s.set_defaults(func=_plainly(cmd_dlq_resolve))

    s = d.add_parser("reopen", help="open resolved or replayed dead letters again")
    s.add_argument("ids", type=int, nargs="+", metavar="ID")
    s.add_argument("--note", help="why")
    _by(s)
    s.set_defaults(func=_plainly(cmd_dlq_reopen))

    s = d.add_parser("assign", help="give dead letters to someone")
    s.add_argument("ids", type=int, nargs="+", metavar="ID")
    s.add_argument("--to", required=True, metavar="USER", help="who ('' for nobody)")
    _by(s)
    s.set_defaults(func=_plainly(cmd_dlq_assign))

    s = d.add_parser("note", help="add a note to a dead letter")
    s.add_argument("id", type=int)
    s.add_argument("text")
    _by(s)
    s.set_defaults(func=_plainly(cmd_dlq_note))

    s = d.add_parser("reindex", help="index dead letters the topics hold and the index does not")
    s.add_argument("--service", choices=SERVICES)
    s.set_defaults(func=_plainly(cmd_dlq_reindex))
