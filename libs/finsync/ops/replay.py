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
letters send each once; one that fails to send goes back to what it was. A dry run sends
nothing and writes one summary row to the audit (`replay:<id>`), not one per letter.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from finsync.contract.topics import retry_topic
from finsync.ops import audit
from finsync.ops.dead_letters import LETTER_COLUMNS, Letter, Query, where
from finsync.runtime import bulk, clients, db
from finsync.runtime.dlq import replay_message
from finsync.runtime.failures import Origin
from finsync.runtime.messages import Outgoing
from finsync.settings import Settings

MAX_CHUNK = 500  # letters sent, then audited, together
TAKEN = "refused: replayed by another replay, or changed, since this one chose it; look again"
CANCELLED = "cancelled: not sent"


@dataclass(frozen=True)
class Result:
    letter: Letter
    outcome: str  # replayed | would-replay | refused: <why> | failed: <Kafka's answer> |
    # cancelled: not sent


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
            sending = [x for x in letters if x.id not in refused]
            sender = _Sender(settings, conn, replay_id, rows, outcomes, progress)
            sender.send(sending, rate_per_second, cancelled, done=len(refused))
    return Replay(replay_id, [Result(x, outcomes[x.id]) for x in letters], more)


def _rows(rows: list[list[Any]]) -> str:
    """Many rows as one JSON parameter (see runtime/bulk.py). Statements that take one run
    unprepared (`prepare=False`): a prepared statement soon gets a generic plan, which cannot
    know the number of rows and joins them quadratically."""
    return bulk.rows_document(rows)


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
                _rows([[x.id, outcomes[x.id], retry_topic(x.service)] for x in letters]),
            ),
            prepare=False,
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


class _Sender:
    def __init__(
        self,
        settings: Settings,
        conn: psycopg.Connection,
        replay_id: str,
        rows: dict[int, int],
        outcomes: dict[int, str],
        progress: Callable[[int], None],
    ) -> None:
        self.settings, self.conn, self.replay_id = settings, conn, replay_id
        self.rows, self.outcomes = rows, outcomes
        self.done, self.progress = 0, progress
        self.flights: list[_Flight] = []  # chunks handed to Kafka whose answers are not recorded

    def send(
        self,
        letters: list[Letter],
        rate_per_second: float,
        cancelled: Callable[[], bool],
        done: int,
    ) -> None:
        """Chunk by chunk: claim (which reads what to send) and hand the chunk to Kafka at once;
        then record Kafka's answers to the chunk before, so the next claim runs while Kafka
        answers. The rate is kept by waiting before each claim; a cancelled replay records the
        rest as not sent. Interrupted (Ctrl-C, an error), it still records the answers to what
        it handed over, and puts back what it claimed and did not."""
        if not letters:
            return
        producer = clients.producer(self.settings, "finsync-dlq-replay")
        self.done = done
        size = chunk_size(rate_per_second)
        try:
            for start in range(0, len(letters), size):
                if self.flights and rate_per_second > 0:
                    last = self.flights[-1]
                    pause = len(last.chunk) / rate_per_second - (time.monotonic() - last.began)
                    if pause > 0:
                        time.sleep(pause)
                began = time.monotonic()
                if cancelled():
                    self._settle_all()
                    rest = [x.id for x in letters[start:]]
                    for i in rest:
                        self.outcomes[i] = CANCELLED
                    _record_outcomes(self.conn, self.rows, self.outcomes, rest, {})
                    self.progress(self.done + len(rest))
                    return
                chunk = letters[start : start + size]
                messages = _claim(self.conn, self.replay_id, chunk)
                ids = [x.id for x in chunk if x.id in messages]
                flight = _Flight(chunk, ids, began, clients.Sending(producer, timeout=30))
                self.flights.append(flight)
                flight.sending.produce(messages[i] for i in ids)
                while len(self.flights) > 1:
                    self._settle(self.flights[0])
            self._settle_all()
        finally:
            if self.flights:  # interrupted: no progress is told, a database error is the cause
                with contextlib.suppress(psycopg.Error):
                    self._settle_all(quiet=True)

    def _settle_all(self, quiet: bool = False) -> None:
        while self.flights:
            self._settle(self.flights[0], quiet)

    def _settle(self, flight: _Flight, quiet: bool = False) -> None:
        """Wait for Kafka's answers to a chunk and record them. Letters claimed and not sent
        (refused by Kafka, or never handed over) go back to what they were; one never handed
        over keeps its audit row as intended."""
        answers = flight.sending.wait()
        sent = flight.ids[: len(answers)]
        for i, answer in zip(sent, answers, strict=True):
            error = answer.error
            self.outcomes[i] = "replayed" if error is None else f"failed: {error.str()}"
        claimed = set(flight.ids)
        for x in flight.chunk:
            if x.id not in claimed:
                self.outcomes[x.id] = TAKEN
        unsent = set(flight.ids[len(answers) :])
        before = {x.id: x.status for x in flight.chunk if x.id in claimed}
        ids = [x.id for x in flight.chunk if x.id not in unsent]
        _record_outcomes(self.conn, self.rows, self.outcomes, ids, before, unsent)
        self.flights.remove(flight)
        self.done += len(ids)
        if not quiet:
            self.progress(self.done)


@dataclass
class _Flight:
    """A chunk claimed and handed to Kafka: its letters, the ids claimed, when its turn began
    (turns are spaced for the rate), and Kafka's answers as they come."""

    chunk: list[Letter]
    ids: list[int]
    began: float
    sending: clients.Sending


def _claim(conn: psycopg.Connection, replay_id: str, letters: list[Letter]) -> dict[int, Outgoing]:
    """open (or, forced, whatever it was) -> replayed, only for letters unchanged since they
    were chosen (same status, same updated_at): a second replay of the same letters, or an
    operator's change meanwhile, makes this one skip them. Locked in id order, as the runtime
    locks them. Returns the message to send for each letter claimed, read in the same
    statement."""
    rows = conn.execute(
        "UPDATE finsync.dead_letters d SET status = 'replayed', updated_at = now() "
        "FROM (SELECT (r->>0)::bigint AS id, r->>1 AS status, (r->>2)::timestamptz AS seen "
        "FROM jsonb_array_elements(%s::jsonb) AS r) AS x "
        "WHERE d.id = x.id AND d.status = x.status AND d.updated_at = x.seen "
        "AND d.id IN (SELECT id FROM finsync.dead_letters WHERE id = ANY(%s::bigint[]) "
        "ORDER BY id FOR UPDATE) "
        "RETURNING d.id, d.service, d.key, d.value, d.header_keys, d.header_values, "
        "d.source_topic, d.source_partition, d.source_offset, d.source_timestamp",
        (
            _rows([[x.id, x.status, x.updated_at.isoformat()] for x in letters]),
            "{" + ",".join(str(x.id) for x in letters) + "}",  # one text parameter, see _rows
        ),
        prepare=False,
    ).fetchall()
    messages = {}
    for id_, service, key, value, keys, values, topic, partition, offset, stamp in rows:
        origin = Origin(topic, partition, offset, _ms(stamp), 0, None)
        headers = list(zip(keys, values, strict=True))
        messages[id_] = replay_message(service, key, value, headers, origin, replay_id, id_)
    return messages


def _ms(at: datetime | None) -> int:
    return int(at.timestamp() * 1000) if at is not None else 0


def _record_outcomes(
    conn: psycopg.Connection,
    rows: dict[int, int],
    outcomes: dict[int, str],
    ids: list[int],
    before: dict[int, str],
    unsent: Collection[int] = (),
) -> None:
    """The outcome of each of `ids`; a claimed letter Kafka did not take, or that was never
    handed to it (`unsent`), goes back to the status it had (`before`), unless something else
    changed it since."""
    with conn.transaction():
        conn.execute(
            "UPDATE finsync.replay_audit a SET outcome = x.r->>1, finished_at = now() "
            "FROM jsonb_array_elements(%s::jsonb) AS x(r) WHERE a.id = (x.r->>0)::bigint",
            (_rows([[rows[i], outcomes[i]] for i in ids]),),
            prepare=False,
        )
        back = sorted(i for i in before if i in unsent or outcomes[i] != "replayed")
        if back:
            conn.execute(
                "UPDATE finsync.dead_letters d SET status = x.status, updated_at = now() "
                "FROM unnest(%s::bigint[], %s::text[]) AS x(id, status) "
                "WHERE d.id = x.id AND d.id IN (SELECT id FROM finsync.dead_letters "
                "WHERE id = ANY(%s) AND status = 'replayed' ORDER BY id FOR UPDATE)",
                (back, [before[i] for i in back], back),
                prepare=False,
            )
