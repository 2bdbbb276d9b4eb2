"""The dead-letter index on the real stack: a real invoice-poster indexes what it dead-letters,
with its place on the topic; `finsync dlq` finds it there; a replay is audited, resolved by the
service once it takes effect, linked to the letter it becomes when it fails again, and refused
by the loop guard when that keeps happening."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from finsync.cli.main import main as finsync
from finsync.contract.events import InvoiceIssued
from finsync.contract.topics import retry_topic
from finsync.ops import dead_letters as dl
from finsync.ops import replay as rp
from finsync.runtime import clients, db, dlq, failures
from finsync.runtime import headers as h
from finsync.runtime.messages import Outgoing, Record
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
)

pytestmark = pytest.mark.integration

SERVICE = "invoice-poster"


@pytest.fixture(scope="module")
def poster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(SERVICE, tmp_path_factory.mktemp("poster"), FAST_RETRIES).start()
    yield service
    assert service.stop() == 0


def letters_of(settings: Settings, key: str) -> list[dl.Letter]:
    """The letters of a key, oldest first, once the relay has put each on its topic."""
    with db.connect(settings) as conn:
        found = dl.search(conn, dl.Query(key=key), limit=100)
    return sorted(found, key=lambda x: x.id) if all(x.dlq_offset is not None for x in found) else []


def placed(settings: Settings, key: str, n: int) -> list[dl.Letter]:
    return eventually(
        lambda: (found := letters_of(settings, key)) and len(found) == n and found,
        60,
        f"{n} dead letter(s) of {key} on their topic",
    )


def invalid(rng: random.Random) -> InvoiceIssued:
    """An invoice whose total is not its subtotal and tax: a permanent dead letter."""
    good = documents.invoice(rng, 1)
    return good.model_copy(update={"total": good.total + Decimal(1)})


def detail(settings: Settings, id_: int) -> dl.Detail:
    with db.connect(settings) as conn:
        found = dl.detail(conn, settings, id_)
    assert found is not None
    return found


def out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert finsync(list(argv)) == 0
    return capsys.readouterr().out


def test_a_bad_event_is_indexed_with_its_fields_and_place_and_the_cli_finds_it(
    settings: Settings,
    serde: Serde,
    poster: ServiceProcess,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = invalid(rng)
    key = bad.invoice_id
    topic = InvoiceIssued.TOPIC
    clients.send(
        clients.producer(settings, "test"),
        [Outgoing(topic, key.encode(), serde.encode(bad), [("publisher-header", b"ok-1")])],
    )
    publish_raw(settings, topic, key.encode(), b"not avro", [("publisher-header", b"ok-2")])
    business, poison = placed(settings, key, 2)

    assert (business.service, business.dlq_topic, business.status) == (
        SERVICE,
        f"{SERVICE}.dlq",
        "open",
    )
    assert (business.error_class, business.category, business.stage) == (
        "InvalidEvent",
        "permanent",
        "TASK_PUT",
    )
    assert "is not subtotal" in business.reason
    assert (business.event_id, business.attempts, business.message_key) == (
        str(bad.event_id),
        1,
        key,
    )
    assert business.source_topic == topic and business.source_offset >= 0
    assert (poison.error_class, poison.stage, poison.event_id) == (
        "UndecodableEvent",
        "VALUE_CONVERTER",
        None,
    )
    # Each row names the record Kafka holds at its place on the dead-letter topic.
    on_topic = {(x.record.partition, x.record.offset): x for x in dlq.read(settings, SERVICE)
                if x.record.key_text == key}  # fmt: skip
    for letter in (business, poison):
        record = on_topic[(letter.dlq_partition or 0, letter.dlq_offset or 0)].record
        assert record.header_text(h.ERR_EXCEPTION_MESSAGE) == letter.reason
        assert (record.header_text(h.ERR_TRACE_ID) or None) == letter.trace_id
    shown = detail(settings, business.id)
    assert shown.headers == [("publisher-header", "ok-1")]
    assert shown.payload.data is not None and shown.payload.data["invoice_id"] == key
    assert Decimal(shown.payload.data["total"]) == bad.total  # exact, as text
    assert "InvalidEvent" in shown.stack
    assert [x.id for x in shown.same_key] == [poison.id]
    raw = detail(settings, poison.id)
    assert raw.payload.data is None and "not in the Confluent wire format" in raw.payload.note
    assert raw.value_size == len(b"not avro")

    assert "2 dead letter(s)" in out(capsys, "dlq", "list", "--key", key)
    listed = out(capsys, "dlq", "list", "--key", key, "--error", "invalidevent")
    assert "1 dead letter(s)" in listed and "is not subtotal" in listed
    assert str(poison.id) in out(capsys, "dlq", "list", "--key", key, "--error", "UndecodableEvent")
    assert "0 dead letter(s)" in out(capsys, "dlq", "list", "--key", key, "--status", "resolved")
    assert "0 dead letter(s)" in out(
        capsys, "dlq", "list", "--key", key, "--service", "account-sync"
    )
    shown_text = out(capsys, "dlq", "show", str(business.id))
    assert f'"invoice_id": "{key}"' in shown_text and "publisher-header: ok-1" in shown_text


def test_a_dry_run_changes_nothing_but_the_audit(
    settings: Settings,
    serde: Serde,
    poster: ServiceProcess,
    rng: random.Random,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = invalid(rng)
    publish(settings, serde, [bad])
    [letter] = placed(settings, bad.invoice_id, 1)
    retried = TopicTail(settings, retry_topic(SERVICE))
    try:
        shown = out(capsys, "dlq", "replay", str(letter.id), "--dry-run", "--reason", "check",
                    "--by", "sre-dry")  # fmt: skip
        assert "would-replay" in shown
        assert "1 would replay, 0 refused, 0 failed;" in shown
        assert not [r for r in retried.poll(2) if r.key_text == bad.invoice_id]
    finally:
        retried.close()
    after = detail(settings, letter.id)
    assert after.letter == letter  # status, notes, updated_at: untouched
    assert after.history == []  # a dry run is one summary row for the replay, not per letter
    with db.connect(settings) as conn:
        [(target, detail_)] = conn.execute(
            "SELECT target, detail FROM finsync.ops_audit WHERE actor = 'sre-dry' "
            "AND action = 'replay-dry-run' AND detail -> 'ids' = %s::jsonb",
            (f"[{letter.id}]",),
        ).fetchall()
    assert target.startswith("replay:")
    assert (detail_["reason"], detail_["count"], detail_["force"]) == ("check", 1, False)


def test_a_replay_after_its_cause_is_fixed_takes_effect_and_the_service_resolves_it(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 2)
    memo = documents.credit_memo(rng, invoice)
    publish(settings, serde, [memo])  # its invoice is not posted: retries, then a dead letter
    [letter] = placed(settings, memo.credit_memo_id, 1)
    assert (letter.category, letter.error_class) == ("retries-exhausted", "DependencyNotReady")
    publish(settings, serde, [invoice])  # the cause goes away
    eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 30, "invoice")

    result = rp.replay(settings, ids=[letter.id], reason="invoice posted now", actor="sre")
    assert [r.outcome for r in result.results] == ["replayed"]
    resolved = eventually(
        lambda: (d := detail(settings, letter.id)).letter.status == "resolved" and d,
        30,
        "the service to resolve the replayed letter",
    )
    assert journals(settings, f"credit-memo:{memo.credit_memo_id}") == 1
    assert resolved.letter.notes == f"took effect after replay {result.replay_id}"
    # The service may settle it before the replay has written Kafka's answer down.
    assert sorted((x.actor, x.action) for x in resolved.history) == [
        (SERVICE, "resolve"),
        ("sre", "replay"),
        ("sre", "replay-outcome"),
    ]
    again = rp.replay(settings, ids=[letter.id], reason="once more", actor="sre")
    assert again.results[0].outcome.startswith("refused: resolved already")


def test_a_replay_that_fails_again_is_linked_and_the_loop_guard_then_refuses_it(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    bad = invalid(rng)
    publish(settings, serde, [bad])
    [first] = placed(settings, bad.invoice_id, 1)
    replayed = rp.replay(settings, ids=[first.id], reason="try it", actor="sre")
    assert replayed.results[0].outcome == "replayed"
    first, second = placed(settings, bad.invoice_id, 2)
    assert (second.replay_of, second.replays, second.error_class) == (first.id, 1, "InvalidEvent")
    assert (first.status, first.replays) == ("replayed", 1)
    assert [x.id for x in detail(settings, second.id).ancestors] == [first.id]
    assert [x.id for x in detail(settings, first.id).children] == [second.id]

    guarded = dataclasses.replace(settings, replay_max=1)
    refused = rp.replay(guarded, ids=[first.id, second.id], reason="again", actor="sre")
    assert [r.outcome.split(":")[0] for r in refused.results] == ["refused", "refused"]
    assert "FINSYNC_REPLAY_MAX=1" in refused.results[1].outcome
    with db.connect(settings) as conn:
        audit = conn.execute(
            "SELECT outcome FROM finsync.replay_audit WHERE replay_id = %s",
            (refused.replay_id,),
        ).fetchall()
    assert all(o.startswith("refused") for (o,) in audit) and len(audit) == 2
    forced = rp.replay(guarded, ids=[second.id], reason="mended", actor="sre", force=True)
    assert forced.results[0].outcome == "replayed"
    *_, second, third = placed(settings, bad.invoice_id, 3)
    assert (third.replay_of, third.replays, second.replays) == (second.id, 2, 2)


def test_reindex_adds_what_only_the_topic_holds_once(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"REINDEX-{uuid.uuid4().hex[:10]}"
    original = Record("billing.invoice-issued", 0, 7, 0, key.encode(), b"old", [("p", b"1")])
    letter = failures.dead_letter(
        original, ValueError("from before the index"), service=SERVICE, stage="TASK_PUT",
        now_ms=1_700_000_000_000, trace_id=None,
    )  # fmt: skip
    clients.send(clients.producer(settings, "test"), [letter])  # straight to the topic
    assert letters_of(settings, key) == []
    assert "dead letter(s) added" in out(capsys, "dlq", "reindex", "--service", SERVICE)
    [indexed] = letters_of(settings, key)
    assert (indexed.error_class, indexed.source_offset, indexed.reason) == (
        "ValueError",
        7,
        "from before the index",
    )
    assert indexed.failed_at.timestamp() == 1_700_000_000
    assert "0 dead letter(s) added" in out(capsys, "dlq", "reindex", "--service", SERVICE)
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM finsync.dead_letters WHERE message_key = %s", (key,)
        ).fetchone()
    assert row == (1,)


def test_a_key_longer_than_an_index_entry_is_indexed_and_the_service_goes_on(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    # Random text does not compress: a btree entry on the key itself would refuse it.
    key = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8000))
    publish_raw(settings, InvoiceIssued.TOPIC, key.encode(), b"not avro")
    good = documents.invoice(rng, 1)
    publish(settings, serde, [good])
    [letter] = placed(settings, key, 1)
    assert (letter.error_class, letter.message_key) == ("UndecodableEvent", key)
    eventually(lambda: journals(settings, f"invoice:{good.invoice_id}") == 1, 30, "the invoice")
    assert poster.running()


def test_a_replay_header_the_audit_does_not_hold_resolves_nothing(
    settings: Settings, serde: Serde, poster: ServiceProcess, rng: random.Random
) -> None:
    bad = invalid(rng)
    publish(settings, serde, [bad])
    [letter] = placed(settings, bad.invoice_id, 1)
    # Anyone who may write to the retry topic could claim a replay of any letter.
    good = documents.invoice(rng, 1)
    record = Record(InvoiceIssued.TOPIC, 0, 1, 0, good.invoice_id.encode(), serde.encode(good), [])
    forged = [
        (h.REPLAY_ID, str(uuid.uuid4()).encode()),
        (h.REPLAY_DEAD_LETTER, str(letter.id).encode()),
    ]
    clients.send(
        clients.producer(settings, "test"), [failures.retry(record, SERVICE, 0, 0, forged)]
    )
    eventually(lambda: journals(settings, f"invoice:{good.invoice_id}") == 1, 30, "the invoice")
    assert detail(settings, letter.id).letter.status == "open"
