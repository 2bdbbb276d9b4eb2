"""A replay sends each letter once, however often it is asked to: the letters are claimed
before they are sent. A dry run leaves one summary row; a replay can be cancelled."""

from __future__ import annotations

import uuid

import pytest

from finsync.contract.topics import retry_topic
from finsync.ops import replay as rp
from finsync.ops import replay_sending as sending
from finsync.ops.dead_letters import Query
from finsync.runtime import db
from finsync.settings import Settings
from tests.integration.replay_support import indexed
from tests.support import TopicTail, eventually

pytestmark = pytest.mark.integration

SERVICE = "invoice-poster"


def statuses(settings: Settings, ids: list[int]) -> list[str]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT status FROM finsync.dead_letters WHERE id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
    return [r[0] for r in rows]


def test_two_replays_of_the_same_letters_at_once_send_each_once(settings: Settings) -> None:
    key = f"TWICE-{uuid.uuid4().hex[:10]}".encode()
    ids = indexed(settings, key, 2)
    retried = TopicTail(settings, retry_topic(SERVICE))
    second: list[rp.Replay] = []

    def meanwhile() -> bool:
        # The other operator's replay runs after this one chose the letters, before it sends.
        if not second:
            second.append(rp.replay(settings, ids=ids, reason="second", actor="b"))
        return False

    first = rp.replay(settings, ids=ids, reason="first", actor="a", cancelled=meanwhile)
    assert [r.outcome for r in second[0].results] == ["replayed", "replayed"]
    assert [r.outcome for r in first.results] == [sending.TAKEN, sending.TAKEN]
    eventually(lambda: [r for r in retried.poll(0.5) if r.key == key], 30)
    assert len([r for r in retried.poll(2) if r.key == key]) == 2  # poll keeps all it read
    retried.close()
    again = rp.replay(settings, ids=ids, reason="third", actor="c")
    assert all("replayed already" in r.outcome for r in again.results)
    assert statuses(settings, ids) == ["replayed", "replayed"]


def test_a_cancelled_replay_sends_nothing_more_and_says_so(settings: Settings) -> None:
    key = f"CANCEL-{uuid.uuid4().hex[:10]}".encode()
    ids = indexed(settings, key, 2)
    done = rp.replay(settings, ids=ids, reason="r", actor="a", cancelled=lambda: True)
    assert [r.outcome for r in done.results] == [sending.CANCELLED, sending.CANCELLED]
    assert statuses(settings, ids) == ["open", "open"]
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT outcome, finished_at IS NOT NULL FROM finsync.replay_audit "
            "WHERE replay_id = %s",
            (done.replay_id,),
        ).fetchall()
        [summary] = conn.execute(
            "SELECT detail FROM finsync.ops_audit WHERE target = %s AND action = 'replay'",
            (rp.target(done.replay_id),),
        ).fetchall()
    assert rows == [(sending.CANCELLED, True)] * 2
    assert summary[0]["ids"] == ids and summary[0]["force"] is False


def test_a_dry_run_is_one_summary_row_with_the_filter(settings: Settings) -> None:
    key = f"DRY-{uuid.uuid4().hex[:10]}"
    indexed(settings, key.encode(), 3)
    done = rp.replay(settings, query=Query(key=key), reason="look", actor="a", dry_run=True)
    assert [r.outcome for r in done.results] == ["would-replay"] * 3
    with db.connect(settings) as conn:
        audited = conn.execute(
            "SELECT action, detail FROM finsync.ops_audit WHERE target = %s",
            (rp.target(done.replay_id),),
        ).fetchall()
        per_letter = conn.execute(
            "SELECT count(*) FROM finsync.replay_audit WHERE replay_id = %s", (done.replay_id,)
        ).fetchone()
    assert per_letter == (0,)
    [(action, detail)] = audited
    assert action == "replay-dry-run"
    assert (detail["count"], detail["filter"], detail["reason"]) == (3, {"key": key}, "look")
