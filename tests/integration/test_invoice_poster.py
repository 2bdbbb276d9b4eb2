"""invoice-poster on the real stack: exactly-once under duplicates, bad input and crashes."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from finsync.contract.events import InvoiceIssued
from finsync.ops import replay
from finsync.runtime import dlq, inbox
from finsync.runtime import headers as h
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import (
    FAST_RETRIES,
    ServiceProcess,
    TopicTail,
    eventually,
    journals,
    publish,
    publish_raw,
    publish_to_partition,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def open_amount(settings: Settings, invoice_id: str) -> object:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT open_amount FROM erp.ar_open_items WHERE invoice_id = %s", (invoice_id,)
        ).fetchone()
    return None if row is None else row[0]


def posted_for(tail: TopicTail, key: str) -> list[object]:
    return [r for r in tail.poll(0.5) if r.key_text == key]


def test_a_duplicate_delivery_and_a_resent_document_make_one_journal(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    tail = TopicTail(settings, "erp.invoice-posted")
    invoice = documents.invoice(rng, 1)
    resent = invoice.model_copy(update={"event_id": uuid.uuid4()})  # same invoice, new event id
    publish(settings, serde, [invoice, invoice, resent])
    eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 30, "the posting")
    eventually(lambda: posted_for(tail, invoice.invoice_id), 30, "erp.invoice-posted")
    tail.poll(3)  # time for any wrongful second posting to show up
    assert journals(settings, f"invoice:{invoice.invoice_id}") == 1
    posted = [
        serde.decode("erp.invoice-posted", r.value) for r in posted_for(tail, invoice.invoice_id)
    ]
    assert len(posted) == 1
    lines = posted[0].journal_lines  # type: ignore[attr-defined]
    assert sum(x.debit for x in lines) == sum(x.credit for x in lines) == invoice.total
    assert posted[0].causation_id == str(invoice.event_id)  # type: ignore[attr-defined]
    assert posted[0].correlation_id == invoice.correlation_id


def test_poison_bytes_and_an_unknown_schema_are_dead_lettered_and_the_events_behind_them_posted(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 2)
    key = invoice.invoice_id.encode()  # same key: same partition, right in front of the invoice
    publish_raw(
        settings,
        "billing.invoice-issued",
        key,
        b"not avro at all",
        [("publisher-header", b"\x01\x02")],
    )
    publish_raw(
        settings,
        "billing.invoice-issued",
        key,
        b"\x00\x00\x0f\x42\x3f" + b"\x02\x04",
        [("publisher-header", b"\x03")],
    )
    publish(settings, serde, [invoice])
    eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 30, "the posting")

    def letters() -> list[dlq.DeadLetter]:
        return [x for x in dlq.read(settings, "invoice-poster") if x.record.key == key]

    found = eventually(lambda: len(letters()) == 2 and letters(), 30, "two dead letters")
    by_value = {x.record.value: x for x in found}
    poison = by_value[b"not avro at all"]
    unknown = by_value[b"\x00\x00\x0f\x42\x3f\x02\x04"]
    assert poison.error_class == "UndecodableEvent"
    assert unknown.error_class == "UnknownSchema"
    assert "999999" in unknown.reason
    for letter, publisher_value in ((poison, b"\x01\x02"), (unknown, b"\x03")):
        r = letter.record
        assert r.header("publisher-header") == publisher_value
        assert r.header_text(h.ERR_TOPIC) == "billing.invoice-issued"
        assert int(r.header_text(h.ERR_OFFSET) or -1) >= 0
        assert r.header_text(h.ERR_PARTITION) is not None
        assert r.header_text(h.ERR_CONSUMER_GROUP) == "invoice-poster"
        assert r.header_text(h.ERR_CLASS) == "permanent"
        assert r.header_text(h.ERR_STAGE) == "VALUE_CONVERTER"
        assert r.header_text(h.ERR_EXCEPTION_STACKTRACE)
        assert r.header_text(h.ERR_FIRST_FAILURE) and r.header_text(h.ERR_LAST_FAILURE)
        assert r.header_text(h.ERR_ATTEMPTS) == "1"
        assert r.header_text(h.ERR_TIMESTAMP)


def test_a_business_invalid_invoice_is_dead_lettered_with_a_reason(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    good = documents.invoice(rng, 3)
    bad = good.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "invoice_id": good.invoice_id + "-X",
            "total": good.total + 1,
        }
    )
    publish(settings, serde, [bad])
    letter = eventually(
        lambda: next(
            (
                x
                for x in dlq.read(settings, "invoice-poster")
                if x.record.key_text == bad.invoice_id
            ),
            None,
        ),
        30,
        "the dead letter",
    )
    assert letter.error_class == "InvalidEvent"
    assert f"total {bad.total} {bad.currency} is not subtotal" in letter.reason
    assert journals(settings, f"invoice:{bad.invoice_id}") == 0


def test_a_dead_letter_replayed_after_its_cause_is_fixed_posts_exactly_once(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 4)
    memo = documents.credit_memo(rng, invoice)
    publish(settings, serde, [memo])  # its invoice is not posted: retries, then a dead letter

    def letter() -> dlq.DeadLetter | None:
        return next(
            (
                x
                for x in dlq.read(settings, "invoice-poster")
                if x.record.key_text == memo.credit_memo_id
            ),
            None,
        )

    dead = eventually(letter, 60, "the credit memo to be dead-lettered after its retries")
    assert dead.category == "retries-exhausted"
    assert dead.attempts >= 2  # retried until its budget (1 s with FAST_RETRIES) was spent
    assert float(dead.record.header_text(h.ERR_WAITED) or 0) >= 1.0
    assert dead.original[0] == "billing.credit-memo-issued"

    publish(settings, serde, [invoice])  # the cause goes away
    eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 30, "invoice")
    [indexed] = eventually(lambda: index_ids(settings, dead), 30, "the letter in the index")
    results = replay.replay(settings, ids=[indexed], reason="invoice posted", actor="test")
    assert [r.outcome for r in results.results] == ["replayed"]
    eventually(lambda: journals(settings, f"credit-memo:{memo.credit_memo_id}") == 1, 30, "credit")
    eventually(lambda: status(settings, indexed) == "resolved", 30, "the letter resolved")
    # Replayed again, forced (a replay refuses a resolved letter): it still takes effect once.
    results = replay.replay(
        settings, ids=[indexed], reason="invoice posted", actor="test", force=True
    )
    assert [r.outcome for r in results.results] == ["replayed"]
    eventually(
        lambda: open_amount(settings, invoice.invoice_id) == invoice.total - memo.total,
        10,
        "the open amount reduced by the credit memo",
    )
    with psycopg.connect(settings.database_url) as conn:
        audit = conn.execute(
            "SELECT replayed_by, outcome, target_topic FROM finsync.replay_audit "
            "WHERE message_key = %s",
            (memo.credit_memo_id,),
        ).fetchall()
    assert audit == [("test", "replayed", "invoice-poster.retry")] * 2
    time.sleep(2)
    assert journals(settings, f"credit-memo:{memo.credit_memo_id}") == 1


def status(settings: Settings, letter_id: int) -> str:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT status FROM finsync.dead_letters WHERE id = %s", (letter_id,)
        ).fetchone()
    return str(row[0]) if row else "missing"


def index_ids(settings: Settings, letter: dlq.DeadLetter) -> list[int]:
    """The dead-letter index's id of a letter read from its topic."""
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM finsync.dead_letters WHERE dlq_topic = %s AND dlq_partition = %s "
            "AND dlq_offset = %s",
            (letter.record.topic, letter.record.partition, letter.record.offset),
        ).fetchall()
    return [r[0] for r in rows]


def committed(settings: Settings, group: str, topic: str) -> int:
    c = Consumer({**settings.kafka_config(), "group.id": group})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    offsets = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
    c.close()
    return sum(max(o.offset, 0) for o in offsets)


def test_sigkill_between_database_commit_and_offset_commit_makes_no_duplicate(
    settings: Settings, serde: Serde, rng: random.Random, tmp_path: Path
) -> None:
    invoices = [documents.invoice(rng, n) for n in range(20)]
    before = committed(settings, "invoice-poster", InvoiceIssued.TOPIC)
    crashing = ServiceProcess(
        "invoice-poster", tmp_path, {**FAST_RETRIES, "FINSYNC_FAULT_PAUSE": "before-offset-commit"}
    )
    crashing.start()
    publish(settings, serde, invoices)
    crashing.wait_log("fault point before-offset-commit reached", 30)
    crashing.kill()
    posted_before_restart = sum(journals(settings, f"invoice:{i.invoice_id}") for i in invoices)
    assert posted_before_restart > 0  # the database committed ...
    assert committed(settings, "invoice-poster", InvoiceIssued.TOPIC) == before  # ... offsets not

    again = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    try:
        eventually(
            lambda: all(journals(settings, f"invoice:{i.invoice_id}") == 1 for i in invoices),
            60,
            "every invoice posted",
        )
        eventually(
            lambda: (
                committed(settings, "invoice-poster", InvoiceIssued.TOPIC) >= before + len(invoices)
            ),
            60,
            "offsets committed after the redelivery",
        )
    finally:
        assert again.stop() == 0
    assert all(journals(settings, f"invoice:{i.invoice_id}") == 1 for i in invoices)


def test_a_record_waiting_in_retry_does_not_hold_up_the_records_behind_it(
    settings: Settings, serde: Serde, rng: random.Random, tmp_path: Path
) -> None:
    invoice = documents.invoice(rng, 5)
    memo = documents.credit_memo(rng, invoice)  # its invoice is not posted: it must wait
    behind = [documents.invoice(rng, n) for n in range(6, 11)]
    slow_retries = {"FINSYNC_RETRY_BASE_SECONDS": "30"}
    poster = ServiceProcess("invoice-poster", tmp_path, slow_retries).start()
    try:
        publish_to_partition(settings, serde, 0, [memo])
        publish_to_partition(settings, serde, 0, behind)  # other keys, behind it in its partition
        eventually(
            lambda: all(journals(settings, f"invoice:{i.invoice_id}") == 1 for i in behind),
            20,
            "the invoices behind the waiting credit memo",
        )
        assert journals(settings, f"credit-memo:{memo.credit_memo_id}") == 0
        publish(settings, serde, [invoice])  # now the memo can go through, on its next retry
    finally:
        assert poster.stop() == 0


def test_inbox_rows_older_than_the_retention_window_are_pruned(settings: Settings) -> None:
    service = f"test-prune-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO finsync.inbox (service, event_id, topic, document_key, processed_at) "
            "VALUES (%s, %s, 't', 'old', now() - interval '15 days'), "
            "(%s, %s, 't', 'new', now() - interval '13 days')",
            (service, uuid.uuid4(), service, uuid.uuid4()),
        )
        assert inbox.prune(conn, service, retention_days=14) == 1
        left = conn.execute(
            "SELECT document_key FROM finsync.inbox WHERE service = %s", (service,)
        ).fetchall()
    assert left == [("new",)]
