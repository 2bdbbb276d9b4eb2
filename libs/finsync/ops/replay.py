"""Replay dead letters from the index: each goes back through `<service>.retry` with its
original key (so the same partition), value and publisher headers, due at once with fresh
attempts, carrying the replay's id and the letter's id (`finsync.replay.id`,
`finsync.replay.dead-letter`). No topic is read: the index keeps the bytes.

Every replay is audited before anything is sent (`finsync.replay_audit`, outcome
'intended', and `finsync.ops_audit` with the reason), each letter's outcome as soon as Kafka
answers, so an interrupted replay still shows what it meant to do and how far it got. A sent
letter goes from open to replayed; the service resolves it once its record takes effect.

The loop guard: a letter whose content was replayed and failed again `FINSYNC_REPLAY_MAX`
times is refused, as is one resolved or replayed already, unless forced.

Each chunk's letters are claimed (open -> replayed, only if unchanged since they were chosen)
in one statement before they are sent, so a double-click or two operators replaying the same
letters send each once; one Kafka refuses goes back to what it was, one whose answer never
comes stays replayed (it may have been written). A dry run sends nothing and writes one
summary row to the audit (`replay:<id>`), not one per letter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from finsync.contract.topics import retry_topic
from finsync.ops import audit
from finsync.ops import replay_sending as sending
from finsync.ops.dead_letters import LETTER_COLUMNS, Letter, Query, where
from finsync.runtime import bulk, db
from finsync.settings import Settings

MAX_CHUNK = 500  # letters sent, then audited, together


@dataclass(frozen=True)
class Result:
    letter: Letter
    outcome: str  # replayed | would-replay | refused: <why> | failed: <Kafka's refusal> |
    # unknown: <no answer> | not sent: <why> | cancelled: not sent


@dataclass(frozen=True)
class Replay:
    replay_id: str
    results: list[Result]
    more: bool = False  # the filter matched more letters than the limit took


def refusal(letter: Letter, max_replays: int, force: bool) -> str | None:
    """Why a letter is not replayed, or None: it is."""
    if force:
        return None
    if letter.status == "resolved":
        return "resolved already; force to replay it anyway"
    if letter.status == "replayed":
        return (
            "replayed already and not yet resolved (its service may not have taken it yet); "
            "force to send it again"
        )
    if letter.replays >= max_replays:
        return (
            f"its content was replayed and failed again {letter.replays} time(s) "
            f"(FINSYNC_REPLAY_MAX={max_replays}): mend the cause, then force"
        )
    return None


def check_rate(rate_per_second: float) -> None:
    """At least one letter a second, or 0 chosen on purpose: as fast as Kafka takes them."""
    if rate_per_second != 0 and not rate_per_second >= 1:
        raise ValueError(
            "the rate is at least 1 letter per second, or 0 for as fast as Kafka takes them"
        )


def target(replay_id: str) -> str:
    """The audit target of a replay as a whole."""
    return f"replay:{replay_id}"


def selection(ids: Sequence[int] | None, query: Query | None) -> dict[str, Any]:
    """What a replay was asked to take, for the audit: the ids, or the filter."""
    if ids is not None:
        return {"ids": sorted(set(ids))}
    chosen = {k: v for k, v in asdict(query or Query()).items() if v is not None}
    return {
        "filter": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in chosen.items()}
    }


def chunk_size(rate_per_second: float) -> int:
    """Letters per chunk: about one second's worth at the rate, so the rate holds per second."""
    if rate_per_second <= 0:
        return MAX_CHUNK
    return max(1, min(MAX_CHUNK, int(rate_per_second)))


def select(
    conn: psycopg.Connection,
    ids: Sequence[int] | None = None,
    query: Query | None = None,
    limit: int = 10000,
) -> tuple[list[Letter], bool]:
    """The letters to replay, the first to fail first (a key's records go back in their order):
    by id, or by filter (open letters unless the filter names a status). Returns (letters,
    whether more matched than `limit`)."""
    if (ids is None) == (query is None):
        raise ValueError("replay either letters by id or a filter, not both or neither")
    if ids is not None:
        rows = conn.execute(
            f"SELECT {LETTER_COLUMNS} FROM finsync.dead_letters WHERE id = ANY(%s) "
            "ORDER BY failed_at, id",
            (list(ids),),
        ).fetchall()
        letters = [Letter(*r) for r in rows]
        missing = sorted(set(ids) - {x.id for x in letters})
        if missing:
            raise LookupError(f"no dead letter {', '.join(map(str, missing))} in the index")
        return letters, False
    assert query is not None
    condition, params = where(query if query.status else replace(query, status="open"))
    rows = conn.execute(
        f"SELECT {LETTER_COLUMNS} FROM finsync.dead_letters WHERE {condition} "
        "ORDER BY failed_at, id LIMIT %s",
        [*params, limit + 1],
    ).fetchall()
    return [Letter(*r) for r in rows[:limit]], len(rows) > limit


def replay(
    settings: Settings,
    *,
    reason: str,
    actor: str,
    ids: Sequence[int] | None = None,
    query: Query | None = None,
    dry_run: bool = False,
    rate_per_second: float = 50.0,
    force: bool = False,
    limit: int = 10000,
    progress: Callable[[int], None] = lambda _: None,
    cancelled: Callable[[], bool] = lambda: False,
    replay_id: str | None = None,
) -> Replay:
    """Replay letters by id or by filter, at most `rate_per_second` (0: as fast as Kafka
    takes them); `progress` is told how many are done after each chunk, `cancelled` is asked
    before each chunk (True: the rest are not sent)."""
    if not reason.strip():
        raise ValueError("a replay needs a reason: why these letters should go through now")
    if not actor.strip():
        raise ValueError("a replay needs an actor: who replays")
    check_rate(rate_per_second)
    replay_id = replay_id or str(uuid.uuid4())
    with db.connect(settings, autocommit=True) as conn:
        letters, more = select(conn, ids, query, limit)
        refused = {x.id: why for x in letters if (why := refusal(x, settings.replay_max, force))}
        outcomes = {
            x.id: f"refused: {refused[x.id]}"
            if x.id in refused
            else ("would-replay" if dry_run else "intended")
            for x in letters
        }
        summary = {
            "reason": reason,
            "force": force,
            "count": len(letters) - len(refused),
            "refused": len(refused),
            **selection(ids, query),
        }
        if dry_run:
            audit.record(conn, actor, "replay-dry-run", target(replay_id), summary)
            progress(len(letters))
        else:
            rows = _intent(conn, replay_id, actor, summary, letters, outcomes)
            sender = sending.Sender(settings, conn, replay_id, rows, outcomes, progress)
            chosen = [x for x in letters if x.id not in refused]
            sender.send(
                chosen, rate_per_second, chunk_size(rate_per_second), cancelled, len(refused)
            )
    return Replay(replay_id, [Result(x, outcomes[x.id]) for x in letters], more)


def _intent(
    conn: psycopg.Connection,
    replay_id: str,
    actor: str,
    summary: dict[str, Any],
    letters: list[Letter],
    outcomes: dict[int, str],
) -> dict[int, int]:
    """Audit rows for the replay and every letter, in one transaction, before anything is
    sent; returns the replay_audit row of each letter."""
    ids = [x.id for x in letters]
    with conn.transaction():
        rows = conn.execute(
            "INSERT INTO finsync.replay_audit (replay_id, replayed_by, service, dlq_topic, "
            "dlq_partition, dlq_offset, message_key, event_id, error_class, target_topic, "
            "dry_run, outcome, dead_letter_id, finished_at) "
            "SELECT %s, %s, d.service, d.dlq_topic, d.dlq_partition, d.dlq_offset, "
            "d.message_key, d.event_id, d.error_class, x.r->>2, false, x.r->>1, d.id, "
            "CASE WHEN x.r->>1 = 'intended' THEN NULL ELSE now() END "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(r, n) "
            "JOIN finsync.dead_letters d ON d.id = (x.r->>0)::bigint "
            "ORDER BY x.n RETURNING id, dead_letter_id",
            (
                replay_id,
                actor,
                bulk.rows_document(
                    [[x.id, outcomes[x.id], retry_topic(x.service)] for x in letters]
                ),
            ),
            prepare=False,  # many rows in one parameter: see ops/replay_sending.py
        ).fetchall()
        audit.record(conn, actor, "replay", target(replay_id), summary)
        each: dict[str, Any] = {
            k: summary[k] for k in ("reason", "force", "filter") if k in summary
        }
        groups: dict[tuple[str, str], list[str]] = {}  # the letters of each action and outcome
        for i in ids:
            action = "replay-refused" if outcomes[i].startswith("refused") else "replay"
            groups.setdefault((action, outcomes[i]), []).append(audit.letter(i))
        for (action, outcome), targets in groups.items():
            detail: dict[str, Any] = {"replay_id": replay_id, **each, "outcome": outcome}
            audit.record_many(conn, actor, action, targets, detail)
    return {letter: row for row, letter in rows}
