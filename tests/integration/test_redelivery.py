"""A record redelivered after it became a dead letter (its offset commit failed, say) is
skipped: no second retry chain, no second dead letter, whatever batch it comes in and however
long after its chain ended. A re-send of the document and a replay of the letter still go.

Run by the real BatchProcessor on the database, in a transaction rolled back at the end.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from finsync.contract.events import InvoiceIssued
from finsync.contract.topics import dlq_topic, retry_topic
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.runtime import parking
from finsync.runtime.dlq import replay_message
from finsync.runtime.failures import Origin, RetryPolicy
from finsync.runtime.messages import Outgoing, Record
from finsync.runtime.processing import BatchProcessor
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.service import Service
from finsync.settings import Settings
from tests.support import rolled_back

pytestmark = pytest.mark.integration

T0 = 1_800_000_000_000  # the harness's clock, epoch ms


class Harness:
    """A service whose handler waits for invoices listed in `late` (a dependency not ready)
    and rejects invoices numbered BAD-…; its clock moves only when the test moves it."""

    def __init__(self, conn: psycopg.Connection, serde: Serde) -> None:
        self.conn, self.serde = conn, serde
        self.late: set[str] = set()
        self.now = T0
        self.service = Service(
            name=f"test-redelivery-{uuid.uuid4().hex[:8]}",
            handlers={InvoiceIssued.TOPIC: self.handle},
            bind=lambda c: c,
        )
        budget = RetryPolicy(budget_seconds=1, base_seconds=0.1, max_seconds=1)
        self.processor = BatchProcessor(self.service, serde, budget, clock_ms=lambda: self.now)
        self.offset = 0
        conn.execute("CREATE TEMP TABLE effects (event_id uuid NOT NULL) ON COMMIT DROP")

    def handle(self, event: InvoiceIssued, conn: psycopg.Connection) -> list[object]:
        if event.invoice_number.startswith("BAD-"):
            raise InvalidEvent("rejected by the test")
        if event.invoice_id in self.late:
            raise DependencyNotReady("its account has not come yet")
        conn.execute("INSERT INTO effects VALUES (%s)", (event.event_id,))
        return []

    def record(self, event: InvoiceIssued) -> Record:
        """The event as a first delivery, at the next offset of the input topic."""
        self.offset += 1
        value = self.serde.encode(event)
        return Record(event.TOPIC, 0, self.offset, T0, event.key.encode(), value, [])

    def process(self, *records: Record) -> dict[str, int]:
        return dict(self.processor.process(self.conn, list(records)))

    def sent(self, topic: str) -> list[Outgoing]:
        rows = self.conn.execute(
            "SELECT topic, key, value, header_keys, header_values FROM finsync.outbox "
            "WHERE service = %s AND topic = %s ORDER BY id",
            (self.service.name, topic),
        ).fetchall()
        return [Outgoing(t, k, v, list(zip(hk, hv, strict=True))) for t, k, v, hk, hv in rows]

    def consumed(self, message: Outgoing, offset: int) -> Record:
        """A message this service sent to its retry topic, as it comes back."""
        return Record(
            message.topic, 0, offset, self.now, message.key, message.value, message.headers
        )

    def letters(self) -> list[Outgoing]:
        return self.sent(dlq_topic(self.service.name))

    def effects(self) -> list[uuid.UUID]:
        return [r[0] for r in self.conn.execute("SELECT event_id FROM effects")]


@pytest.fixture
def harness(settings: Settings, serde: Serde) -> Iterator[Harness]:
    with rolled_back(settings) as conn:
        yield Harness(conn, serde)


def late_invoice(harness: Harness, seed: int) -> InvoiceIssued:
    invoice = documents.invoice(random.Random(seed), seed)
    harness.late.add(invoice.invoice_id)
    return invoice


def test_a_redelivery_after_its_retry_chain_ended_in_a_dead_letter_is_skipped(
    harness: Harness,
) -> None:
    invoice = late_invoice(harness, 1)
    first = harness.record(invoice)
    assert harness.process(first) == {"retried": 1}
    [retry] = harness.sent(retry_topic(harness.service.name))

    harness.now += 5_000  # past the budget: the retry ends the chain
    assert harness.process(harness.consumed(retry, 100)) == {"dead-lettered": 1}

    # Its account has come since, so a redelivery taken up would take effect, its dead letter
    # still open. The input record again, in a batch of its own, after the chain ended; and
    # once more beside another record, which would go the whole-batch way.
    harness.late.clear()
    assert harness.process(first) == {"duplicate": 1}
    other = harness.record(documents.invoice(random.Random(2), 2))
    assert harness.process(first, other) == {"duplicate": 1, "processed": 1}
    assert len(harness.letters()) == 1
    assert len(harness.sent(retry_topic(harness.service.name))) == 1
    assert harness.effects() == [documents.invoice(random.Random(2), 2).event_id]


@pytest.mark.parametrize("keyed", [True, False])
def test_a_redelivery_of_a_record_dead_lettered_at_once_is_skipped(
    harness: Harness, keyed: bool
) -> None:
    bad = documents.invoice(random.Random(3), 3)
    bad = bad.model_copy(update={"invoice_number": f"BAD-{bad.invoice_number}"})
    record = harness.record(bad)
    record = record if keyed else dataclasses.replace(record, key=None)
    assert harness.process(record) == {"dead-lettered": 1}
    assert harness.process(record) == {"duplicate": 1}
    assert len(harness.letters()) == 1


def test_dead_lettered_origins_are_forgotten_once_no_topic_can_deliver_them_again(
    harness: Harness,
) -> None:
    insert = (
        "INSERT INTO finsync.dead_lettered (service, origin_topic, origin_partition, "
        "origin_offset, dead_lettered_at) "
        "VALUES (%s, 't', 0, %s, now() - make_interval(days => %s))"
    )
    name = harness.service.name
    harness.conn.execute(insert, (name, 1, parking.DEAD_LETTERED_KEPT_DAYS + 1))
    harness.conn.execute(insert, (name, 2, parking.DEAD_LETTERED_KEPT_DAYS - 1))
    assert parking.prune(harness.conn, name) == 1
    left = harness.conn.execute(
        "SELECT origin_offset FROM finsync.dead_lettered WHERE service = %s", (name,)
    ).fetchall()
    assert left == [(2,)]


def dead_lettered(harness: Harness, seed: int) -> tuple[InvoiceIssued, Record]:
    """An invoice whose retries ran out: its input record, its dead letter sent."""
    invoice = late_invoice(harness, seed)
    first = harness.record(invoice)
    assert harness.process(first) == {"retried": 1}
    [retry] = harness.sent(retry_topic(harness.service.name))
    harness.now += 5_000
    assert harness.process(harness.consumed(retry, 100)) == {"dead-lettered": 1}
    harness.late.clear()  # its account has come
    return invoice, first


def test_a_publishers_resend_of_a_dead_lettered_document_takes_effect(harness: Harness) -> None:
    invoice, _ = dead_lettered(harness, 5)
    resent = invoice.model_copy(update={"event_id": uuid.uuid4()})
    assert harness.process(harness.record(resent)) == {"processed": 1}
    assert harness.effects() == [resent.event_id]


def test_a_replay_of_a_dead_letter_takes_effect_once(harness: Harness) -> None:
    invoice, first = dead_lettered(harness, 4)
    [letter] = harness.letters()
    origin = Origin(first.topic, first.partition, first.offset, first.timestamp_ms, 0, None)
    replay = replay_message(harness.service.name, letter.key, letter.value, [], origin, "r-1", 1)
    assert harness.process(harness.consumed(replay, 101)) == {"processed": 1}
    assert harness.effects() == [invoice.event_id]

    # The same document re-sent by its publisher, at a new offset: taken as a duplicate by
    # the inbox, not by its dead letter's mark.
    assert harness.process(harness.record(invoice)) == {"duplicate": 1}
    assert harness.effects() == [invoice.event_id]
