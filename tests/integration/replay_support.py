"""Dead letters made for replay tests, and what a replay recorded of them."""

from __future__ import annotations

from finsync.errors import InvalidEvent
from finsync.runtime import clients, db, dead_letter_index, dlq, failures
from finsync.runtime.messages import Record
from finsync.settings import Settings
from tests.support import eventually

SERVICE = "invoice-poster"


def indexed(settings: Settings, key: bytes, copies: int) -> list[int]:
    """`copies` dead letters of `key` put straight on the topic, then indexed from it (as
    `finsync dlq reindex` does); their ids in the index, in topic order."""
    original = Record("billing.invoice-issued", 0, 1, 0, key, b"not avro", [])
    letter = failures.dead_letter(
        original, InvalidEvent("bad"), service=SERVICE, stage="TASK_PUT", now_ms=0, trace_id=None
    )
    clients.send(clients.producer(settings, "test"), [letter] * copies)
    records = eventually(
        lambda: [x.record for x in dlq.read(settings, SERVICE) if x.record.key == key], 30
    )
    assert len(records) == copies
    with db.connect(settings) as conn:
        assert dead_letter_index.backfill(conn, SERVICE, records) == copies
        rows = conn.execute(
            "SELECT id FROM finsync.dead_letters WHERE message_key = %s ORDER BY dlq_offset",
            (key.decode(),),
        ).fetchall()
    return [r[0] for r in rows]


def audited(settings: Settings, key: bytes) -> tuple[list[tuple], list[str]]:
    """(replay id, actor, letter, outcome, finished) of each audit row of the key's letters,
    and the letters' statuses, in topic order."""
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT replay_id, replayed_by, dead_letter_id, outcome, finished_at IS NOT NULL "
            "FROM finsync.replay_audit WHERE message_key = %s ORDER BY dlq_offset",
            (key.decode(),),
        ).fetchall()
        statuses = conn.execute(
            "SELECT status FROM finsync.dead_letters WHERE message_key = %s ORDER BY dlq_offset",
            (key.decode(),),
        ).fetchall()
    return [tuple(r) for r in rows], [s for (s,) in statuses]
