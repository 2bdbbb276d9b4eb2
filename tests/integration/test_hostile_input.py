"""Hostile input on the real stack: a record the database cannot store, or one that breaks a
rule, is a dead letter with its reason; the service keeps running and what is behind it posts."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsync.contract.events import InvoiceIssued
from finsync.runtime import clients, dlq
from finsync.runtime.messages import Outgoing
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import FAST_RETRIES, ServiceProcess, eventually, journals, publish

pytestmark = pytest.mark.integration


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES)
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def postings(settings: Settings, invoice_id: str) -> int:
    return journals(settings, f"invoice:{invoice_id}")


def letters(settings: Settings, key: bytes) -> list[dlq.DeadLetter]:
    return [x for x in dlq.read(settings, "invoice-poster") if x.record.key == key]


def test_ids_with_a_nul_or_over_the_length_limit_are_dead_letters_and_the_invoice_behind_posts(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    good = documents.invoice(rng, 1)
    key = good.invoice_id.encode()  # one key: one partition, the bad ones in front of the good
    nul = good.model_copy(
        update={"event_id": uuid.uuid4(), "invoice_id": f"{good.invoice_id}\x00X"}
    )
    long = good.model_copy(
        update={"event_id": uuid.uuid4(), "invoice_id": good.invoice_id + "9" * 6000}
    )
    topic = InvoiceIssued.TOPIC
    clients.send(
        clients.producer(settings, "test"),
        [Outgoing(topic, key, serde.encode(e), []) for e in (nul, long)] + [serde.outgoing(good)],
    )
    poster.start()
    eventually(lambda: postings(settings, good.invoice_id) == 1, 60, "the good invoice to post")
    found = eventually(lambda: len(letters(settings, key)) == 2 and letters(settings, key), 30)
    reasons = sorted(x.reason for x in found)
    assert all(x.error_class == "InvalidEvent" for x in found)
    assert "invoice_id has control character U+0000" in reasons[0] + reasons[1]
    too_long = f"invoice_id is {len(long.invoice_id)} characters long; the limit is 200"
    assert too_long in reasons[0] + reasons[1]
    assert poster.proc is not None and poster.proc.poll() is None, "the service stopped"


def test_a_corrected_resend_in_the_same_batch_as_its_invalid_original_takes_effect(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    corrected = documents.invoice(rng, 2)
    original = corrected.model_copy(update={"event_id": uuid.uuid4(), "total": corrected.total + 1})
    publish(settings, serde, [original, corrected])  # one key: in order, in one batch
    poster.start()
    eventually(lambda: postings(settings, corrected.invoice_id) == 1, 60, "the corrected posting")
    key = corrected.invoice_id.encode()
    [letter] = eventually(lambda: letters(settings, key), 30, "the original's dead letter")
    assert letter.error_class == "InvalidEvent"
    assert "is not subtotal" in letter.reason
    assert postings(settings, corrected.invoice_id) == 1
