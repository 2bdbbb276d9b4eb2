"""`make bench`, finance-analytics: how fast the app counts what the services publish for the
bench's 50,000 invoices, beside a baseline measured over the same records in the same run.

The records (bench/analytics_events.py: every `erp.invoice-posted`, `erp.payment-applied` and
`crm.opportunity-closed` the invoices lead to, re-sends and a few dead letters) are produced in
the Confluent wire format, with the registered schemas, to topics of this run's own, so the
bench needs no other bench before it and reads nobody else's data. Then, over those records:

- baseline: a plain confluent-kafka consumer doing the same counting: decode with the same Serde,
  skip a count key seen before (a dict), the app's pure rules (facts_of -> Ledger.add), commit
  offsets every second. It keeps no changelog, so a restart would count everything again;
- finance-analytics: the faust app itself (app.Analytics) in this process, reading the run's
  topics, with its changelogged tables: the cost of its durability is in its figure.

Each is timed from its first record counted to its last; both must end with the figures the
records add up to, or the bench fails. The run's topics are deleted at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime

import faust
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.table import Table

from finsync.bench.analytics_events import BenchEvents, bench_events
from finsync.contract.events import InvoicePosted, OpportunityClosed, PaymentApplied
from finsync.contract.topics import dlq_topic
from finsync.runtime import clients
from finsync.runtime.messages import Headers
from finsync.runtime.serde import Serde, registry_client
from finsync.settings import Settings
from services.finance_analytics.app import Analytics
from services.finance_analytics.facts import Fact, of_dead_letter
from services.finance_analytics.ledger import Ledger
from services.finance_analytics.reader import Streams, count_key, dead_letter_key, facts_of
from services.finance_analytics.views import as_json

console = Console() if sys.stdout.isatty() else Console(width=100)  # a log: the table unwrapped
CONTRACT = (InvoicePosted.TOPIC, PaymentApplied.TOPIC, OpportunityClosed.TOPIC)
COMMIT_SECONDS = 1.0  # the baseline's offset commits
STALL_SECONDS = 60.0  # nothing new counted this long: the bench fails
WATCH_SECONDS = 0.02  # how often the watcher reads the app's ledger


@dataclasses.dataclass(frozen=True)
class Run:
    """This run's topics: contract topic -> bench topic, and dead letters' topic -> service."""

    prefix: str
    events: dict[str, str]
    dead_letters: dict[str, str]

    @classmethod
    def new(cls, services: list[str]) -> Run:
        prefix = f"bench-analytics-{uuid.uuid4().hex[:8]}"
        return cls(
            prefix,
            {t: f"{prefix}.{t}" for t in CONTRACT},
            {f"{prefix}.{dlq_topic(s)}": s for s in services},
        )

    def streams(self, group: str) -> Streams:
        reads = {bench: contract for contract, bench in self.events.items()}
        return Streams(group=group, events=reads, dead_letters=self.dead_letters, publish=False)


@dataclasses.dataclass(frozen=True)
class Counted:
    name: str
    seconds: float
    ledger: Ledger


def create_topics(settings: Settings, run: Run) -> None:
    admin = clients.admin(settings)
    topics = [NewTopic(t, num_partitions=settings.topic_partitions) for t in run.events.values()]
    topics += [NewTopic(t, num_partitions=1) for t in run.dead_letters]  # as the services' DLQs
    for future in admin.create_topics(topics, operation_timeout=30).values():
        future.result()


def delete_run(settings: Settings, run: Run) -> None:
    """The run's topics, the app's changelogs, its tables on disk and both consumer groups."""
    shutil.rmtree(settings.home / "analytics" / f"{run.prefix}-app", ignore_errors=True)
    admin = clients.admin(settings)
    topics = [t for t in admin.list_topics(timeout=15).topics if t.startswith(run.prefix)]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            future.result()
    groups = [f"{run.prefix}-baseline", f"{run.prefix}-app"]
    for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
        try:
            future.result()
        except Exception:  # a group that never committed is not there: nothing to delete
            continue


def produce(settings: Settings, serde: Serde, run: Run, made: BenchEvents) -> int:
    """Every record, as the services publish it; the number of records."""
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "compression.type": "lz4"})

    def send(
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        at: int = 0,
    ) -> None:
        kafka_headers: list[tuple[str, str | bytes | None]] = list(headers or [])
        while True:
            try:
                producer.produce(topic, value, key, headers=kafka_headers, timestamp=at)
                return
            except BufferError:
                producer.poll(0.05)

    encoded: dict[str, bytes] = {}  # a relay's re-send is the same message again
    with console.status("producing ...") as status:
        for i, event in enumerate(made.events):
            event_id = str(event.event_id)
            value = encoded.get(event_id) or serde.encode(event)
            encoded[event_id] = value
            send(run.events[event.TOPIC], event.key.encode(), value)
            if i % 5000 == 0:
                status.update(f"producing {i:,} / {len(made.events):,} ...")
        bench_dlq = {service: topic for topic, service in run.dead_letters.items()}
        for letter in made.letters:
            m = letter.message
            send(bench_dlq[letter.service], m.key, m.value, m.headers, letter.timestamp_ms)
        if producer.flush(60):
            raise SystemExit("Kafka did not take every bench record within 60 s")
    return len(made.events) + len(made.letters)


def expected(made: BenchEvents) -> Ledger:
    """What the records add up to, counted straight from the events as made."""
    ledger = Ledger()
    seen: set[str] = set()
    for event in made.events:
        key = count_key(event)
        if key not in seen:
            seen.add(key)
            ledger.add(facts_of(event))
    for letter in made.letters:
        ledger.add(of_dead_letter(letter.service, letter.timestamp_ms))
    return ledger


def baseline(settings: Settings, run: Run, records: int) -> Counted:
    serde = Serde(registry_client(settings))  # a cache of its own, like the app's
    consumer = clients.consumer(settings, f"{run.prefix}-baseline")
    consumer.subscribe([*run.events.values(), *run.dead_letters])
    contract = {bench: c for c, bench in run.events.items()}
    ledger = Ledger()
    counted: dict[str, list[Fact]] = {}  # count key -> what it added, as the app's table
    remaining, started, committed, heard = records, 0.0, 0.0, time.monotonic()
    with console.status("baseline ..."):
        while remaining:
            msgs = [m for m in consumer.consume(settings.batch_size, timeout=0.5) if not m.error()]
            if not msgs:
                if time.monotonic() - heard > STALL_SECONDS:
                    raise SystemExit(f"baseline: {remaining} records never arrived")
                continue
            heard = time.monotonic()
            started = started or time.perf_counter()
            for m in msgs:
                topic, partition, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
                if topic in contract:
                    event = serde.decode(contract[topic], m.value())
                    key = count_key(event)
                    found = None if key in counted else facts_of(event)
                else:
                    key = dead_letter_key(topic, partition, offset)
                    service = run.dead_letters[topic]
                    found = None if key in counted else of_dead_letter(service, m.timestamp()[1])
                if found is not None:
                    counted[key] = found
                    ledger.add(found)
            remaining -= len(msgs)
            if time.perf_counter() - committed > COMMIT_SECONDS:
                consumer.commit(asynchronous=True)
                committed = time.perf_counter()
    took = time.perf_counter() - started
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:  # the last async commit took every offset already
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            raise
    consumer.close()
    return Counted("baseline: confluent-kafka loop, no changelog", took, ledger)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def app(settings: Settings, run: Run, events: int, log: str) -> Counted:
    """finance-analytics as `finsync run finance-analytics` runs it (a faust Worker), in this
    process: a watcher reads its ledger and stops it with SIGTERM once every event counted."""
    for name in ("faust", "mode", "aiokafka", "finsync"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.basicConfig(filename=log, level=logging.WARNING, force=True)
    own = dataclasses.replace(settings, analytics_port=free_port(settings.analytics_host))
    analytics = Analytics(own, run.streams(f"{run.prefix}-app"))
    worker = faust.Worker(
        analytics.app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.spinner = None
    stamps: dict[str, float] = {}
    stopped = threading.Event()

    def watch() -> None:
        heard, last = time.monotonic(), 0
        with console.status("finance-analytics ...") as status:
            while not stopped.is_set():
                counted = analytics.ledger.counted
                if counted and "first" not in stamps:
                    stamps["first"] = time.perf_counter()
                if counted >= events:
                    stamps["last"] = time.perf_counter()
                    break
                if counted != last:
                    heard, last = time.monotonic(), counted
                    status.update(f"finance-analytics: {counted:,} / {events:,} counted")
                if time.monotonic() - heard > STALL_SECONDS:
                    break
                time.sleep(WATCH_SECONDS)
        if not stopped.is_set():
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's own clean stop

    watcher = threading.Thread(target=watch, name="bench-watch", daemon=True)
    watcher.start()
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass  # the worker ends by exiting; the bench goes on
    finally:
        stopped.set()
        watcher.join()
    if "last" not in stamps:
        raise SystemExit(
            f"finance-analytics counted {analytics.ledger.counted} of {events} events; see {log}"
        )
    return Counted(
        "finance-analytics (faust, changelogged tables)",
        stamps["last"] - stamps["first"],
        analytics.ledger,
    )


def check(ledger: Ledger, wanted: Ledger, name: str, today: date) -> None:
    """The same figures, amount for amount (Decimal equality: 9700 is 9700.0000 from Avro)."""
    got, want = ledger.figures(today), wanted.figures(today)
    if (ledger.counted, got, ledger.dead_letters()) != (
        wanted.counted,
        want,
        wanted.dead_letters(),
    ):
        pairs = zip(got, want, strict=False)
        rows = [(a.legal_entity, a.currency, str(a.day)) for a, b in pairs if a != b]
        raise SystemExit(
            f"{name}: figures differ from what the records add up to: counted "
            f"{ledger.counted} of {wanted.counted} events, {len(got)} day rows of {len(want)}, "
            f"first rows that differ: {rows[:3]}"
        )


def say(r: Counted, records: int) -> None:
    console.print(f"  {r.name}: {r.seconds:.2f} s, {records / r.seconds:,.0f} records/s")


def main() -> int:
    settings = Settings.from_env()
    n = int(os.environ.get("FINSYNC_BENCH_EVENTS", "50000"))
    console.rule(f"[bold]finsync bench[/bold] — finance-analytics, what {n} invoices lead to")
    started, today = time.perf_counter(), datetime.now(UTC).date()
    made = bench_events(n, seed=n)  # the invoices of the invoice-poster bench
    wanted = expected(made)
    console.print(
        f"  made {len(made.events):,} events and {len(made.letters)} dead letters "
        f"({wanted.counted:,} to count once; {time.perf_counter() - started:.0f} s)"
    )
    run = Run.new(sorted({letter.service for letter in made.letters}) or ["invoice-poster"])
    log = str(settings.home / "run" / "bench-analytics.log")
    (settings.home / "run").mkdir(parents=True, exist_ok=True)
    create_topics(settings, run)
    try:
        records = produce(settings, Serde(registry_client(settings)), run, made)
        console.print(f"  produced {records:,} records to {run.prefix}.*")
        results = [baseline(settings, run, records)]
        say(results[-1], records)
        check(results[0].ledger, wanted, results[0].name, today)
        results.append(app(settings, run, wanted.counted, log))
        say(results[-1], records)
        check(results[1].ledger, wanted, results[1].name, today)
        if as_json(results[1].ledger, True, 400, today) != as_json(
            results[0].ledger, True, 400, today
        ):
            raise SystemExit("the app's /kpis view differs from the baseline's")
    finally:
        delete_run(settings, run)

    base = records / results[0].seconds
    table = Table(
        "candidate",
        "records",
        "seconds",
        "records/s",
        "vs baseline",
        title=f"Counting the same {records:,} records ({wanted.counted:,} events once)",
    )
    for r in results:
        rate = records / r.seconds
        table.add_row(
            r.name, f"{records:,}", f"{r.seconds:.2f}", f"{rate:,.0f}", f"{rate / base:.0%}"
        )
    console.print(table)
    console.print(
        "  both totals agree with what the records add up to "
        f"({wanted.counted:,} events, {len(wanted.figures(today)):,} day rows). The baseline keeps "
        "no changelog: a restart would count from the start; the app's changelog writes are "
        "in its figure."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
