"""`make bench`: invoice-poster throughput and latency on the real stack, beside two baselines
measured over the same events in the same run.

- ceiling: consume and decode only — no service can be faster;
- hand-written: consume a batch -> decode (confluent-kafka's Avro deserializer, then the event
  model) -> insert the same rows in one transaction (multi-row statements) -> commit offsets,
  with no framework (no inbox, outbox, savepoints, retry routing, tracing, nothing published);
- finsync: `finsync run invoice-poster` as a process, every guarantee on, until every posting
  is committed and every `erp.invoice-posted` is published.

Then p50/p99 end-to-end latency (publish -> `erp.invoice-posted` readable) at a steady rate.
The services write to a separate database (`finsync_bench`), so the bench leaves the books of
the local stack alone.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import psycopg
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from rich.console import Console
from rich.table import Table

from finsync.bench import results as bench_results
from finsync.bench.latency import latency, latency_line
from finsync.contract.events import InvoiceIssued
from finsync.runtime import clients, db
from finsync.runtime.serde import Serde, registry_client, schema_text
from finsync.scenario import documents
from finsync.settings import Settings
from services.invoice_poster.posting import invoice_posting

console = Console()
TOPIC = InvoiceIssued.TOPIC
GROUP = "invoice-poster"

Offsets = dict[int, tuple[int, int]]  # partition -> (first, end)


def bench_settings(settings: Settings) -> Settings:
    base = settings.database_url.rsplit("/", 1)[0]
    return dataclasses.replace(settings, database_url=f"{base}/finsync_bench")


def reset_database(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for schema in ("erp", "billing", "finsync"):  # everything the migrations create
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute("DROP TABLE IF EXISTS public.finsync_migrations")
    db.migrate(settings)


def end_offsets(consumer: Consumer, topic: str = TOPIC) -> dict[int, int]:
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
    }


def publish_invoices(settings: Settings, serde: Serde, n: int, seed: int) -> Offsets:
    rng = random.Random(seed)
    probe = clients.consumer(settings, f"bench-probe-{uuid.uuid4()}")
    before = end_offsets(probe)
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "compression.type": "lz4"})
    with console.status(f"publishing {n} invoices ...") as status:
        for i in range(n):
            invoice = documents.invoice(rng, i)
            while True:
                try:
                    producer.produce(TOPIC, serde.encode(invoice), invoice.key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 5000 == 0:
                status.update(f"publishing {n} invoices ... {i}")
        producer.flush(60)
    after = end_offsets(probe)
    probe.close()
    return {p: (before[p], after[p]) for p in after}


def consume_range(
    settings: Settings,
    offsets: Offsets,
    batch: Callable[[list[Message]], None],
    commit: bool,
    topic: str = TOPIC,
) -> float:
    """Run `batch` over every record in the range; seconds from first record to last."""
    consumer = clients.consumer(settings, f"bench-{uuid.uuid4()}")
    consumer.assign([TopicPartition(topic, p, first) for p, (first, _) in offsets.items()])
    remaining = sum(end - first for first, end in offsets.values())
    ends = {p: end for p, (_, end) in offsets.items()}
    started = None
    while remaining:
        msgs = [m for m in consumer.consume(settings.batch_size, timeout=1.0) if not m.error()]
        msgs = [m for m in msgs if (m.offset() or 0) < ends[m.partition() or 0]]
        if not msgs:
            continue
        started = started or time.perf_counter()
        batch(msgs)
        if commit:
            consumer.commit(asynchronous=False)
        remaining -= len(msgs)
    consumer.close()
    return time.perf_counter() - (started or time.perf_counter())


def ceiling(settings: Settings, serde: Serde, offsets: Offsets) -> float:
    def decode(msgs: list[Message]) -> None:
        for m in msgs:
            serde.decode(TOPIC, m.value())

    return consume_range(settings, offsets, decode, False)


def hand_written(settings: Settings, offsets: Offsets) -> float:
    conn = psycopg.connect(settings.database_url)
    # Decoded as a user would without finsync: confluent-kafka's deserializer, then the model.
    deserialize = AvroDeserializer(registry_client(settings), schema_text(TOPIC))
    context = SerializationContext(TOPIC, MessageField.VALUE)

    def batch(msgs: list[Message]) -> None:
        entries, lines, items, invoice_lines, schedules = [], [], [], [], []
        for m in msgs:
            invoice = InvoiceIssued.model_validate(deserialize(m.value(), context))
            journal, bookings = invoice_posting(invoice)
            # The same invoice lines and revenue schedule rows invoice-poster keeps.
            i, e, c = invoice.invoice_id, invoice.legal_entity, invoice.currency
            for b in bookings:
                accounts = (b.revenue_account, b.deferred_account)
                invoice_lines.append((i, b.line_id, b.amount, *accounts))
                schedules += [
                    (i, b.line_id, r.period, e, c, *accounts, r.amount) for r in b.schedule
                ]
            entry_id = f"JE-{uuid.uuid4().hex[:20]}"
            entries.append(
                (entry_id, journal.key, journal.legal_entity, journal.currency, journal.description)
            )
            lines += [
                (entry_id, n, x.account_code, x.debit, x.credit)
                for n, x in enumerate(journal.lines, 1)
            ]
            items.append(
                (
                    f"AR-{invoice.invoice_id}",
                    invoice.invoice_id,
                    invoice.invoice_number,
                    invoice.account_id,
                    invoice.legal_entity,
                    invoice.currency,
                    invoice.issued_on,
                    invoice.due_on,
                    invoice.total,
                    invoice.total,
                    entry_id,
                )
            )
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, "
                "currency, description) VALUES (%s, %s, %s, %s, %s)",
                entries,
            )
            # One statement for all lines: the balance trigger checks each entry once.
            cur.execute(
                "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
                "SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::numeric[], "
                "%s::numeric[])",
                [list(col) for col in zip(*lines, strict=True)],
            )
            cur.executemany(
                "INSERT INTO erp.ar_open_items (document_id, invoice_id, invoice_number, "
                "account_id, legal_entity, currency, issued_on, due_on, original_amount, "
                "open_amount, journal_entry_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                items,
            )
            cur.execute(
                "INSERT INTO erp.ar_invoice_lines (invoice_id, line_id, amount, revenue_account, "
                "deferred_account) SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], "
                "%s::text[], %s::text[])",
                [list(col) for col in zip(*invoice_lines, strict=True)],
            )
            if schedules:
                cur.execute(
                    "INSERT INTO erp.revenue_schedules (invoice_id, line_id, period, "
                    "legal_entity, currency, revenue_account, deferred_account, amount) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::date[], %s::text[], "
                    "%s::text[], %s::text[], %s::text[], %s::numeric[])",
                    [list(col) for col in zip(*schedules, strict=True)],
                )

    try:
        return consume_range(settings, offsets, batch, True)
    finally:
        conn.close()


def count(settings: Settings, sql: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def lag(settings: Settings, group: str = GROUP, topics: tuple[str, ...] = (TOPIC,)) -> int:
    return clients.group_lag(settings, group, list(topics))


def catch_up(settings: Settings, group: str = GROUP, topics: tuple[str, ...] = (TOPIC,)) -> None:
    """Let the service `group` (invoice-poster unless told) process, into the stack's own
    books, what it has not processed yet of `topics`, so that moving its group to the bench's
    events skips nothing."""
    behind = lag(settings, group, topics)
    if not behind:
        return
    console.print(f"{group} has {behind} unprocessed events; processing them first")
    proc = subprocess.Popen(
        [sys.executable, "-m", "finsync.cli.main", "run", group],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while lag(settings, group, topics) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if lag(settings, group, topics):
        raise SystemExit(f"{group} did not catch up; see `finsync dlq list` and its logs")


def point_group(
    settings: Settings, group: str, topic: str, offsets: Offsets, wait_seconds: float = 60
) -> None:
    """`group` starts at the range's first records. The broker takes offsets from outside only
    for an empty group: a member that died without leaving holds it for a while."""
    consumer = Consumer({**settings.kafka_config(), "group.id": group})
    starts = [TopicPartition(topic, p, first) for p, (first, _) in offsets.items()]
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                consumer.commit(offsets=starts, asynchronous=False)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"group {group} still has members; stop them first") from exc
                time.sleep(2)
    finally:
        consumer.close()


def framework(
    settings: Settings, offsets: Offsets, n: int, env: dict[str, str], instances: int = 1
) -> tuple[float, list[subprocess.Popen[bytes]]]:
    """`instances` processes of invoice-poster in its group, sharing the partitions."""
    point_group(settings, GROUP, TOPIC, offsets)
    log = open(settings.home / "run" / "bench-invoice-poster.log", "ab")  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "run", GROUP],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        for _ in range(instances)
    ]
    started = None
    with console.status("finsync invoice-poster ...") as status:
        while True:
            posted = count(settings, "SELECT count(*) FROM erp.journal_entries")
            unsent = count(settings, "SELECT count(*) FROM finsync.outbox WHERE sent_at IS NULL")
            if posted and started is None:
                started = time.perf_counter()
            status.update(f"finsync invoice-poster: {posted}/{n} posted, {unsent} unsent")
            if posted >= n and unsent == 0:
                break
            if any(proc.poll() is not None for proc in procs):
                stop(procs)
                raise SystemExit("invoice-poster exited during the bench; see its log")
            time.sleep(0.25)  # polling more often took CPU from the service it measures
    return time.perf_counter() - (started or time.perf_counter()), procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)


def main() -> int:
    settings = bench_settings(Settings.from_env())
    n = int(os.environ.get("FINSYNC_BENCH_EVENTS", "50000"))
    rates = [int(r) for r in os.environ.get("FINSYNC_BENCH_RATES", "200,1000").split(",")]
    seconds = int(os.environ.get("FINSYNC_BENCH_SECONDS", "10"))
    console.rule(f"[bold]finsync bench[/bold] — invoice-poster, {n} invoice-issued events")
    serde = Serde(registry_client(settings))
    catch_up(Settings.from_env())
    reset_database(settings)
    offsets = publish_invoices(settings, serde, n, seed=n)
    assert sum(end - first for first, end in offsets.values()) == n

    runs: list[tuple[str, float]] = []
    runs.append(("ceiling: consume + decode", ceiling(settings, serde, offsets)))
    runs.append(("hand-written loop", hand_written(settings, offsets)))
    assert count(settings, "SELECT count(*) FROM erp.journal_entries") == n
    reset_database(settings)

    env = {**os.environ, "FINSYNC_DATABASE_URL": settings.database_url}
    instances = int(os.environ.get("FINSYNC_BENCH_INSTANCES", "1"))
    took, procs = framework(settings, offsets, n, env, instances)
    many = f", {instances} instances" if instances > 1 else ""
    runs.append((f"finsync invoice-poster (inbox, outbox, relay, tracing{many})", took))
    try:
        latencies = [latency(settings, serde, rate, seconds) for rate in rates]
    finally:
        stop(procs)

    hand = n / runs[1][1]
    table = Table(
        "run",
        "events",
        "seconds",
        "events/s",
        "vs hand-written",
        title=f"Throughput over the same {n} events",
    )
    for name, secs in runs:
        rps = n / secs
        table.add_row(name, str(n), f"{secs:.2f}", f"{rps:,.0f}", f"{rps / hand:.0%}")
    console.print(table)
    console.print("end-to-end latency, publish to erp.invoice-posted readable:")
    for at in latencies:
        console.print(f"  {latency_line(at)}")
    path = bench_results.save(
        "invoice-poster",
        {
            "events": n,
            "throughput": [
                {
                    "run": name,
                    "events": n,
                    "seconds": round(secs, 3),
                    "events_per_second": round(n / secs, 1),
                    "vs_hand_written": round(n / secs / hand, 3),
                }
                for name, secs in runs
            ],
            "latency": [at.as_json() for at in latencies],
        },
    )
    console.print(f"figures saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
