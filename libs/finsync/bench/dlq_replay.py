"""`make bench`, replaying dead letters: how many letters a second `finsync dlq replay` sends
back through a retry topic, beside a baseline measured in the same run.

- finsync: `finsync.ops.replay.replay` as `finsync dlq replay --service ... --rate 0 --limit N`
  runs it: selection from the index, the audit before anything is sent, the claim of each chunk,
  produce and wait for Kafka's answers, each letter's outcome recorded;
- baseline: a plain confluent-kafka producer with finsync's producer settings
  (`clients.producer`) sending the same N messages (same keys, values and headers, so the same
  sizes) to the same topic and waiting for every delivery once: no replay can be faster.

The letters (invoices as billing publishes them, in the Confluent wire format) are rows of a
service name of this run's own in the index of the database `finsync_bench`, so their retry
topic is this run's own too and no service reads it. The run migrates that database first (other
benches reset it), vacuums the index after loading (as autovacuum would have done long before an
SRE replays), and deletes its letters, their audit rows and its topic at the end.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime

import psycopg
from confluent_kafka import KafkaError, Message, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.table import Table

from finsync.bench.invoice_poster import bench_settings
from finsync.contract.topics import dlq_topic, retry_topic
from finsync.ops import audit
from finsync.ops import replay as rp
from finsync.ops.dead_letters import Query
from finsync.runtime import clients, db
from finsync.runtime.dlq import replay_message
from finsync.runtime.failures import Origin
from finsync.runtime.messages import Outgoing
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario import documents
from finsync.settings import Settings

console = Console() if sys.stdout.isatty() else Console(width=100)  # a log: the table unwrapped
LETTERS = 100_000
SERVICE_PREFIX = "bench-replay-"
SOURCE = "billing.invoice-issued"
TARGET_RATE = 20_000  # letters a second `make bench` expects of a replay
ACTOR = "bench"


@dataclasses.dataclass(frozen=True)
class DlqReplayFigures:
    """One run's figures: the replay beside the plain producer, over the same messages."""

    letters: int
    value_bytes: float  # mean size of a letter's value
    replay_seconds: float
    replay_rate: float  # letters a second, selection to the last outcome recorded
    baseline_seconds: float
    baseline_rate: float  # messages a second, first produce to the last delivery
    ratio: float  # replay_rate / baseline_rate
    replayed: int  # letters whose outcome is `replayed`
    audited: int  # replay_audit rows of the replay stamped `replayed`
    claimed: int  # letters of the run whose status is `replayed` afterwards
    on_topic: int  # messages on the run's retry topic: baseline and replay together
    service: str  # the run's own service name (its topic: `<service>.retry`)


def make_letters(settings: Settings, n: int) -> list[tuple[bytes, bytes, str]]:
    """(key, value, event id) of n invoices, encoded with the registered schema."""
    serde = Serde(registry_client(settings))
    rng = random.Random(n)
    made = []
    for i in range(n):
        invoice = documents.invoice(rng, i)
        made.append((invoice.key.encode(), serde.encode(invoice), str(invoice.event_id)))
    return made


def load(conn: psycopg.Connection, service: str, letters: list[tuple[bytes, bytes, str]]) -> None:
    """The letters as the relay indexes an invoice-poster dead letter, in one COPY."""
    now = datetime.now(UTC)
    columns = (
        "service, dlq_topic, dlq_partition, dlq_offset, message_key, event_id, source_topic, "
        "source_partition, source_offset, source_timestamp, stage, error_class, category, "
        "reason, attempts, trace_id, failed_at, key, value, header_keys, header_values"
    )
    with conn.cursor() as cur, cur.copy(f"COPY finsync.dead_letters ({columns}) FROM STDIN") as cp:
        rng = random.Random(len(letters))
        for i, (key, value, event_id) in enumerate(letters):
            trace = f"{rng.getrandbits(128):032x}"
            parent = f"00-{trace}-{trace[:16]}-01".encode()
            cp.write_row(
                (service, dlq_topic(service), 0, i, key.decode(), event_id, SOURCE, i % 3, i,
                 now, "TASK_PUT", "DependencyNotReady", "retries-exhausted",
                 "bench: the invoice's account is not synced yet", 12, trace, now, key, value,
                 ["traceparent"], [parent])
            )  # fmt: skip


def create_topic(settings: Settings, topic: str) -> None:
    spec = NewTopic(
        topic, num_partitions=settings.topic_partitions, config={"retention.ms": "3600000"}
    )
    admin = clients.admin(settings)  # kept while the futures wait: a dropped one cancels them
    for future in admin.create_topics([spec], operation_timeout=30).values():
        future.result()


def baseline(settings: Settings, messages: list[Outgoing]) -> float:
    """Seconds for a plain producer to send every message and hear back about each."""
    failed: list[KafkaError] = []

    def answered(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failed.append(err)

    producer = clients.producer(settings, "finsync-bench-baseline")
    started = time.perf_counter()
    for m in messages:
        while True:
            try:
                producer.produce(
                    m.topic, m.value, m.key, headers=list(m.headers), on_delivery=answered
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.05)
    left = producer.flush(60)
    took = time.perf_counter() - started
    if left or failed:
        raise SystemExit(f"baseline: Kafka did not take {left + len(failed)} messages")
    return took


def same_messages(conn: psycopg.Connection, service: str) -> list[Outgoing]:
    """The messages the replay sends for the run's letters, under a replay id of their own."""
    replay_id = str(uuid.uuid4())
    rows = conn.execute(
        "SELECT id, key, value, header_keys, header_values, source_topic, source_partition, "
        "source_offset, source_timestamp FROM finsync.dead_letters WHERE service = %s "
        "ORDER BY failed_at, id",
        (service,),
    ).fetchall()
    messages = []
    for id_, key, value, keys, values, topic, partition, offset, at in rows:
        origin = Origin(topic, partition, offset, int(at.timestamp() * 1000), 0, None)
        headers = list(zip(keys, values, strict=True))
        messages.append(replay_message(service, key, value, headers, origin, replay_id, id_))
    return messages


def on_topic(settings: Settings, topic: str) -> int:
    probe = clients.consumer(settings, f"{topic}-probe")
    try:
        parts = probe.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            high - low
            for low, high in (
                probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts
            )
        )
    finally:
        probe.close()


def clean_up(settings: Settings, service: str, replay_id: str) -> None:
    """The run's letters, their audit rows, and its topic."""
    with db.connect(settings, autocommit=True) as conn, conn.transaction():
        rows = conn.execute("SELECT id FROM finsync.dead_letters WHERE service = %s", (service,))
        targets = [audit.letter(r[0]) for r in rows] + [rp.target(replay_id)]
        conn.execute("DELETE FROM finsync.ops_audit WHERE target = ANY(%s)", (targets,))
        conn.execute("DELETE FROM finsync.replay_audit WHERE service = %s", (service,))
        conn.execute("DELETE FROM finsync.dead_letters WHERE service = %s", (service,))
    admin = clients.admin(settings)
    topic = retry_topic(service)
    if topic in admin.list_topics(timeout=15).topics:
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            future.result()


def run(settings: Settings, letters: int = LETTERS) -> DlqReplayFigures:
    """Load `letters` dead letters, time the replay and the baseline over them, check that
    every letter went and was audited, and clean up. Always in `finsync_bench`."""
    settings = bench_settings(settings)
    db.migrate(settings)  # another bench may have just reset the database
    service = f"{SERVICE_PREFIX}{uuid.uuid4().hex[:8]}"
    topic = retry_topic(service)
    with console.status(f"making {letters:,} invoices ..."):
        made = make_letters(settings, letters)
    value_bytes = sum(len(v) for _, v, _ in made) / max(1, len(made))
    replay_id = str(uuid.uuid4())  # known before the replay starts: cleaned up however it ends
    try:
        create_topic(settings, topic)
        with db.connect(settings, autocommit=True) as conn:
            with console.status(f"indexing {letters:,} dead letters ..."):
                load(conn, service, made)
                # What earlier runs deleted is vacuumed first, as autovacuum would have by
                # the time an SRE replays: the figure is the replay's, not a cleanup's.
                conn.execute("VACUUM (ANALYZE) finsync.dead_letters")
            messages = same_messages(conn, service)
        with console.status("baseline: plain producer ..."):
            base = baseline(settings, messages)
        del messages
        with console.status("finsync dlq replay ...") as status:
            started = time.perf_counter()
            result = rp.replay(
                settings, reason="bench: replay rate", actor=ACTOR, query=Query(service=service),
                rate_per_second=0, limit=letters, replay_id=replay_id,
                progress=lambda n: status.update(f"finsync dlq replay: {n:,} / {letters:,}"),
            )  # fmt: skip
            took = time.perf_counter() - started
        replayed = sum(r.outcome == "replayed" for r in result.results)
        with db.connect(settings) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE outcome = 'replayed') FROM finsync.replay_audit "
                "WHERE replay_id = %s",
                (result.replay_id,),
            ).fetchone()
            claimed_row = conn.execute(
                "SELECT count(*) FROM finsync.dead_letters WHERE service = %s "
                "AND status = 'replayed'",
                (service,),
            ).fetchone()
        audited = int(row[0]) if row else 0
        claimed = int(claimed_row[0]) if claimed_row else 0
        sent = on_topic(settings, topic)
    finally:
        clean_up(settings, service, replay_id)
    return DlqReplayFigures(
        letters=letters,
        value_bytes=value_bytes,
        replay_seconds=took,
        replay_rate=letters / took,
        baseline_seconds=base,
        baseline_rate=letters / base,
        ratio=base / took,
        replayed=replayed,
        audited=audited,
        claimed=claimed,
        on_topic=sent,
        service=service,
    )


def main() -> int:
    n = int(os.environ.get("FINSYNC_BENCH_DLQ_LETTERS", str(LETTERS)))
    console.rule(f"[bold]finsync bench[/bold] — replaying {n:,} dead letters")
    f = run(Settings.from_env(), n)
    table = Table(
        "candidate",
        "letters",
        "seconds",
        "records/s",
        "vs baseline",
        title=f"Re-publishing {f.letters:,} dead letters (values {f.value_bytes:,.0f} bytes on "
        "average) to a retry topic",
    )
    table.add_row(
        "baseline: plain producer, one wait",
        f"{f.letters:,}",
        f"{f.baseline_seconds:.2f}",
        f"{f.baseline_rate:,.0f}",
        "100%",
    )
    table.add_row(
        "finsync dlq replay --rate 0",
        f"{f.letters:,}",
        f"{f.replay_seconds:.2f}",
        f"{f.replay_rate:,.0f}",
        f"{f.ratio:.0%}",
    )
    console.print(table)
    console.print(
        f"  replayed {f.replayed:,}, audited {f.audited:,}, claimed {f.claimed:,}; "
        f"{f.on_topic:,} messages on {f.service}.retry (baseline and replay); "
        f"target {TARGET_RATE:,} records/s: {'met' if f.replay_rate >= TARGET_RATE else 'MISSED'}",
        highlight=False,
    )
    ok = f.replayed == f.audited == f.claimed == f.letters and f.on_topic == 2 * f.letters
    if not ok:
        console.print("  the counts do not add up: every letter should be sent once and audited")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
