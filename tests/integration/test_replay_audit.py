"""Every replay leaves its trace, even one that is interrupted: who meant to replay what is
recorded before anything is sent, each outcome as it happens, and the replayed records carry
the replay's id."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from finsync.contract.topics import retry_topic
from finsync.errors import InvalidEvent
from finsync.runtime import clients, db, dlq, failures
from finsync.runtime import headers as h
from finsync.runtime.messages import Record
from finsync.settings import Settings
from tests.support import TopicTail, eventually

pytestmark = pytest.mark.integration

SERVICE = "invoice-poster"


class Interrupted(Exception):
    """Ctrl-C, a lost terminal, a killed pod: the replay stops half-way."""


def test_an_interrupted_replay_leaves_what_it_meant_to_do_and_how_far_it_got(
    settings: Settings,
) -> None:
    key = f"REPLAY-{uuid.uuid4().hex[:10]}".encode()
    original = Record("billing.invoice-issued", 0, 1, 0, key, b"not avro", [])
    letter = failures.dead_letter(
        original, InvalidEvent("bad"), service=SERVICE, stage="TASK_PUT", now_ms=0, trace_id=None
    )
    clients.send(clients.producer(settings, "test"), [letter, letter])
    letters = eventually(
        lambda: [x for x in dlq.read(settings, SERVICE) if x.record.key == key], 30
    )
    assert len(letters) == 2
    retried = TopicTail(settings, retry_topic(SERVICE))

    def stop_after_the_first(done: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        dlq.replay(settings, letters, by="sre-on-call", progress=stop_after_the_first)

    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT replay_id, replayed_by, dlq_offset, outcome, finished_at IS NOT NULL "
            "FROM finsync.replay_audit WHERE message_key = %s ORDER BY dlq_offset",
            (key.decode(),),
        ).fetchall()
    assert [(by, offset, outcome, done) for _, by, offset, outcome, done in rows] == [
        ("sre-on-call", letters[0].record.offset, "replayed", True),
        ("sre-on-call", letters[1].record.offset, "intended", False),
    ]
    replay_id = rows[0][0]
    assert rows[1][0] == replay_id
    [sent] = eventually(lambda: [r for r in retried.poll(0.5) if r.key == key], 30)
    assert sent.header_text(h.REPLAY_ID) == str(replay_id)
    retried.close()


def test_a_replay_records_its_id_and_outcome_for_every_letter(settings: Settings) -> None:
    key = f"REPLAY-{uuid.uuid4().hex[:10]}".encode()
    original = Record("billing.invoice-issued", 0, 1, 0, key, b"not avro", [])
    letter = failures.dead_letter(
        original, InvalidEvent("bad"), service=SERVICE, stage="TASK_PUT", now_ms=0, trace_id=None
    )
    clients.send(clients.producer(settings, "test"), [letter])
    letters = eventually(
        lambda: [x for x in dlq.read(settings, SERVICE) if x.record.key == key], 30
    )
    [result] = dlq.replay(settings, letters, by="sre", dry_run=True)
    assert result.outcome == "would-replay"
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT replay_id IS NOT NULL, dry_run, outcome FROM finsync.replay_audit "
            "WHERE message_key = %s",
            (key.decode(),),
        ).fetchone()
    assert row == (True, True, "would-replay")
