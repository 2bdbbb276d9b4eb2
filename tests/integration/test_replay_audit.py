"""Every replay leaves its trace, even one that is interrupted: who meant to replay what is
recorded before anything is sent, each outcome as it happens, and the replayed records carry
the replay's id and the id of the dead letter they replay."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException

from finsync.contract.topics import retry_topic
from finsync.ops import replay as rp
from finsync.ops import replay_sending as sending
from finsync.runtime import clients, db
from finsync.runtime import headers as h
from finsync.settings import Settings
from tests.integration.replay_support import SERVICE, audited, indexed
from tests.support import TopicTail, eventually

pytestmark = pytest.mark.integration


class Interrupted(Exception):
    """Ctrl-C, a lost terminal, a killed pod: the replay stops half-way."""


def test_an_interrupted_replay_leaves_what_it_meant_to_do_and_how_far_it_got(
    settings: Settings,
) -> None:
    key = f"REPLAY-{uuid.uuid4().hex[:10]}".encode()
    ids = indexed(settings, key, 3)
    retried = TopicTail(settings, retry_topic(SERVICE))

    def stop_after_the_first(done: int) -> None:
        raise Interrupted

    # One letter a chunk: the second is claimed and handed to Kafka while the first's answer
    # is recorded, then the operator interrupts; the third is never claimed.
    with pytest.raises(Interrupted):
        rp.replay(
            settings, ids=ids, reason="test", actor="sre-on-call", rate_per_second=1,
            progress=stop_after_the_first,
        )  # fmt: skip

    rows, statuses = audited(settings, key)
    assert [(by, letter, outcome, done) for _, by, letter, outcome, done in rows] == [
        ("sre-on-call", ids[0], "replayed", True),
        ("sre-on-call", ids[1], "replayed", True),  # handed over: its answer still recorded
        ("sre-on-call", ids[2], "intended", False),
    ]
    assert statuses == ["replayed", "replayed", "open"]
    replay_id = rows[0][0]
    assert {r[0] for r in rows} == {replay_id}
    eventually(lambda: len([r for r in retried.poll(0.5) if r.key == key]) >= 2, 30)
    sent = [r for r in retried.poll(2) if r.key == key]  # all that came, two seconds on
    assert [x.header_text(h.REPLAY_DEAD_LETTER) for x in sent] == [str(ids[0]), str(ids[1])]
    assert {x.header_text(h.REPLAY_ID) for x in sent} == {str(replay_id)}
    retried.close()


class Signal(BaseException):
    """Ctrl-C as it lands: KeyboardInterrupt is a BaseException, raised wherever Python is."""


class FailsAfter:
    """finsync's producer, interrupted as it is handed message number `n` (from 1): before
    librdkafka takes it, as it returns from taking it (and "twice": once more in the next wait
    for answers), or in Kafka's answer to it before the answer is recorded. Or it refuses
    that message at once ("refused", with an error other than the broker's rejection of the
    message; "fatal", as a producer that failed for good), or Kafka's answer to it never comes
    ("no answer")."""

    def __init__(self, producer: object, n: int, when: str = "before") -> None:
        self.producer, self.n, self.when = producer, n, when
        self.again = False  # a second Ctrl-C is due in the next poll

    def produce(self, *args: object, **kwargs: Any) -> None:
        self.n -= 1
        if self.n == 0 and self.when == "before":
            raise Interrupted
        if self.n == 0 and self.when == "refused":  # as librdkafka refuses a message at once
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC, "unknown topic"))
        if self.n == 0 and self.when == "fatal":
            raise KafkaException(KafkaError(KafkaError._FATAL, "fatal"))
        if self.n == 0 and self.when == "in its answer":
            kwargs["on_delivery"] = self.interrupt
        if self.n == 0 and self.when == "no answer":  # Kafka's answer never comes back
            kwargs["on_delivery"] = lambda *_: None
        self.producer.produce(*args, **kwargs)  # type: ignore[attr-defined]
        if self.n == 0 and self.when in ("as it returns", "twice"):
            self.again = self.when == "twice"
            raise Signal

    def poll(self, timeout: float) -> int:
        if self.again:
            self.again = False
            raise Signal
        return self.producer.poll(timeout)  # type: ignore[attr-defined,no-any-return]

    @staticmethod
    def interrupt(*_: object) -> None:
        raise Signal

    def __len__(self) -> int:
        return len(self.producer)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.producer, name)


def faulty(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, copies: int, n: int, when: str
) -> tuple[bytes, list[int]]:
    """`copies` letters of a new key (the key, their ids), and replays from now on made with a
    producer that fails at message `n` as FailsAfter says."""
    key = f"FAULT-{uuid.uuid4().hex[:10]}".encode()
    ids = indexed(settings, key, copies)
    made = clients.producer
    monkeypatch.setattr(clients, "producer", lambda *a, **k: FailsAfter(made(*a, **k), n, when))
    return key, ids


def interrupted(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    copies: int,
    n: int,
    when: str,
    rate: float = 0,
) -> tuple[list[tuple], list[str], list[str]]:
    """`copies` letters of a new key replayed (at full speed unless `rate`, one letter a chunk
    at 1) and interrupted at message `n` as FailsAfter says: their audit rows and statuses (see
    audited()), and the letters that reached the retry topic, in order."""
    key, ids = faulty(settings, monkeypatch, copies, n, when)
    retried = TopicTail(settings, retry_topic(SERVICE))
    try:
        with pytest.raises(Interrupted if when == "before" else Signal):
            rp.replay(settings, ids=ids, reason="test", actor="sre", rate_per_second=rate)
        eventually(lambda: [r for r in retried.poll(0.5) if r.key == key], 30)
        sent = [r for r in retried.poll(2) if r.key == key]  # all that came, two seconds on
    finally:
        retried.close()
    position = {str(id_): i for i, id_ in enumerate(ids)}
    return *audited(settings, key), [
        f"letter {position[x.header_text(h.REPLAY_DEAD_LETTER)] + 1}" for x in sent
    ]


def test_a_replay_interrupted_while_handing_a_chunk_to_kafka_puts_back_only_the_unsent(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, statuses, sent = interrupted(settings, monkeypatch, 3, 2, "before")
    assert [(outcome, done) for *_, outcome, done in rows] == [
        ("replayed", True),  # handed over before the interruption: sent, and recorded so
        ("intended", False),
        ("intended", False),
    ]
    assert statuses == ["replayed", "open", "open"]  # a later replay sends only these two
    assert sent == ["letter 1"]


def test_a_replay_interrupted_as_kafka_takes_a_letter_waits_for_its_answer(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C just after librdkafka took the second letter: it is on its way, so it is not put
    back (a later replay would send it twice); the replay waits for Kafka's answer."""
    rows, statuses, sent = interrupted(settings, monkeypatch, 3, 2, "as it returns")
    assert [outcome for *_, outcome, _ in rows] == ["replayed", "replayed", "intended"]
    assert statuses == ["replayed", "replayed", "open"]
    assert sent == ["letter 1", "letter 2"]


def test_a_second_ctrl_c_while_a_replay_records_what_it_sent_leaves_nothing_unrecorded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One letter a chunk. Ctrl-C just after librdkafka took the second letter, and again while
    the replay waits for Kafka's answers to the first: that wait and the next are cut short, so
    both letters handed over stay replayed with their outcome unknown, and the third, never
    claimed, stays open."""
    rows, statuses, sent = interrupted(settings, monkeypatch, 3, 2, "twice", rate=1)
    outcomes = [outcome for *_, outcome, _ in rows]
    assert [o.split(":")[0] for o in outcomes] == ["unknown", "unknown", "intended"]
    assert statuses == ["replayed", "replayed", "open"]
    assert sent == ["letter 1", "letter 2"]


class Again(BaseException):
    """A second Ctrl-C."""


def test_a_second_ctrl_c_while_a_chunk_is_recorded_leaves_no_chunk_unrecorded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One letter a chunk, two in flight when Ctrl-C lands as the second is handed over. A
    second Ctrl-C rolls back the recording of the first chunk: it is recorded on a second try,
    the other chunk is recorded too, and the first interruption is the one raised."""
    record, calls = sending.record_outcomes, []

    def interrupted_once(*args: Any, **kwargs: Any) -> None:
        calls.append(args[3])
        if len(calls) == 1:
            raise Again
        record(*args, **kwargs)

    monkeypatch.setattr(sending, "record_outcomes", interrupted_once)
    rows, statuses, sent = interrupted(settings, monkeypatch, 3, 2, "as it returns", rate=1)
    assert [(outcome, done) for *_, outcome, done in rows] == [
        ("replayed", True),
        ("replayed", True),
        ("intended", False),
    ]
    assert statuses == ["replayed", "replayed", "open"]
    assert sent == ["letter 1", "letter 2"]
    assert len(calls) == 3  # the first chunk twice, then the second


def test_a_replay_interrupted_in_kafkas_answer_leaves_the_letter_replayed_and_unknown(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside the delivery callback of the first letter, before its answer is recorded:
    Kafka wrote it, the replay cannot tell, so the letter stays replayed with outcome unknown
    instead of going back to open to be sent a second time."""
    rows, statuses, sent = interrupted(settings, monkeypatch, 2, 1, "in its answer")
    outcomes = [outcome for *_, outcome, _ in rows]
    assert outcomes[0].startswith("unknown: no answer from Kafka")
    assert outcomes[1] == "replayed"
    assert statuses == ["replayed", "replayed"]  # neither is replayed again unforced
    assert sent == ["letter 1", "letter 2"]


def test_a_replay_stops_claiming_once_kafka_leaves_a_chunk_unanswered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka does not answer for the first letter (one a chunk): it may have been written, so
    it stays replayed, outcome unknown. The chunk already handed over meanwhile is recorded;
    the replay claims nothing more, so the rest stays open instead of each chunk waiting out
    its own silence and ending unknown too."""
    key, ids = faulty(settings, monkeypatch, 3, 1, "no answer")
    result = rp.replay(settings, ids=ids, reason="test", actor="sre", rate_per_second=1)
    assert [r.outcome.split(":")[0] for r in result.results] == ["unknown", "replayed", "not sent"]
    rows, statuses = audited(settings, key)
    assert [(outcome, done) for *_, outcome, done in rows] == [
        (result.results[0].outcome, True),
        ("replayed", True),
        (sending.HALTED, True),
    ]
    assert statuses == ["replayed", "replayed", "open"]


def test_a_letter_kafka_refuses_goes_back_to_open_and_the_rest_are_sent(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at once, whatever the error: it surely was not written. One chunk: the letter
    after it is handed over with it."""
    key, ids = faulty(settings, monkeypatch, 3, 2, "refused")
    result = rp.replay(settings, ids=ids, reason="test", actor="sre", rate_per_second=0)
    assert [r.outcome for r in result.results] == ["replayed", "failed: unknown topic", "replayed"]
    _, statuses = audited(settings, key)
    assert statuses == ["replayed", "open", "replayed"]  # a later replay can send it


def test_a_producer_failed_for_good_stops_the_replay_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One letter a chunk: the chunk after the fatal refusal is never claimed."""
    key, ids = faulty(settings, monkeypatch, 3, 2, "fatal")
    result = rp.replay(settings, ids=ids, reason="test", actor="sre", rate_per_second=1)
    outcomes = [r.outcome for r in result.results]
    assert outcomes == ["replayed", "failed: fatal", sending.HALTED]
    _, statuses = audited(settings, key)
    assert statuses == ["replayed", "open", "open"]


def test_a_replay_records_its_id_and_outcome_for_every_letter(settings: Settings) -> None:
    key = f"REPLAY-{uuid.uuid4().hex[:10]}".encode()
    [letter] = indexed(settings, key, 1)
    [result] = rp.replay(settings, ids=[letter], reason="test", actor="sre").results
    assert result.outcome == "replayed"  # a dry run leaves one summary row: test_console_replay
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT replay_id IS NOT NULL, dry_run, outcome, dead_letter_id "
            "FROM finsync.replay_audit WHERE message_key = %s",
            (key.decode(),),
        ).fetchone()
    assert row == (True, False, "replayed", letter)


def test_stamping_an_outcome_leaves_room_on_the_page_and_no_index_to_touch(
    settings: Settings,
) -> None:
    """Each letter's outcome is an update of its audit row: half of each page is kept free and
    neither outcome nor finished_at is indexed, so the update stays on the row's page (HOT)."""
    with db.connect(settings) as conn:
        [options] = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'finsync.replay_audit'::regclass"
        ).fetchone() or (None,)
        indexed = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND (a.attnum = ANY(i.indkey) OR pg_get_expr(i.indpred, i.indrelid) LIKE "
            "'%%' || a.attname || '%%') WHERE i.indrelid = 'finsync.replay_audit'::regclass",
        ).fetchall()
    assert "fillfactor=50" in (options or [])
    assert {"outcome", "finished_at"}.isdisjoint(name for (name,) in indexed)


def test_claiming_letters_for_a_replay_touches_no_index(settings: Settings) -> None:
    """A replay claims each letter (open -> replayed) before sending it. No index holds the
    status, and half of each page is free, so every claim is a HOT update: a new version on
    the letter's own page and no index entry, where it used to be one in each of eight."""
    ids = indexed(settings, f"HOT-{uuid.uuid4()}".encode(), 20)
    with db.connect(settings) as conn, conn.transaction():
        letters, _ = rp.select(conn, ids=ids)
        claimed, _ = sending.claim(conn, letters)
        updates = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
            "WHERE relid = 'finsync.dead_letters'::regclass"
        ).fetchone()
        status = conn.execute(
            "SELECT array_agg(DISTINCT status) FROM finsync.dead_letters WHERE id = ANY(%s)",
            (ids,),
        ).fetchone()
    assert sorted(claimed) == sorted(ids)
    assert status == (["replayed"],)
    assert updates == (20, 20)


def test_a_letter_claimed_again_since_is_not_put_back(settings: Settings) -> None:
    """Putting back what a replay claimed and never sent touches only letters still as its
    claim left them: one another replay has claimed since (its copy on the way) stays."""
    ids = indexed(settings, f"AGAIN-{uuid.uuid4()}".encode(), 2)
    with db.connect(settings, autocommit=True) as conn:
        letters, _ = rp.select(conn, ids=ids)
        with conn.transaction():
            _, claimed_at = sending.claim(conn, letters)
        with conn.transaction():  # a forced replay claims the second one again
            conn.execute(
                "UPDATE finsync.dead_letters SET updated_at = now() WHERE id = %s", (ids[1],)
            )
        before = {i: "open" for i in ids}
        sending.record_outcomes(conn, {}, {}, [], before, claimed_at, back=ids)
        statuses = conn.execute(
            "SELECT status FROM finsync.dead_letters WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    assert statuses == [("open",), ("replayed",)]
