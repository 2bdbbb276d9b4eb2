"""How a replay sends its letters: each chunk claimed (open -> replayed) and registered in one
transaction, handed to Kafka at once, and Kafka's answers recorded while the next chunk is
claimed. A letter goes back to what it was only when it surely did not reach Kafka: never
handed over, or refused. One whose answer never came may have been written, and stays
replayed rather than risk being sent twice.

Statements that take many rows as one JSON parameter (runtime/bulk.py) run unprepared
(`prepare=False`): a prepared statement soon gets a generic plan, which cannot know the
number of rows and joins them quadratically."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from confluent_kafka import KafkaError

from finsync.ops.dead_letters import Letter
from finsync.runtime import bulk, clients
from finsync.runtime.dlq import replay_message
from finsync.runtime.failures import Origin
from finsync.runtime.messages import Outgoing
from finsync.settings import Settings

WAIT = 30.0  # seconds a replay waits for Kafka's answer to a chunk
GIVE_UP_MS = 25_000  # librdkafka's message.timeout.ms: it gives up before the replay stops waiting
TAKEN = "refused: replayed by another replay, or changed, since this one chose it; look again"
CANCELLED = "cancelled: not sent"
HALTED = (
    "not sent: an earlier letter's outcome is unknown, or the producer failed for good, "
    "so the replay stopped"
)
FAILED = "failed: "  # and Kafka's refusal
UNKNOWN = (
    "unknown: {} (it may have been sent, so the letter stays replayed; "
    "force it again only if its service never takes it)"
)


class Sender:
    """Claims a replay's letters chunk by chunk, hands them to Kafka and records the answers."""

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
        self.flights: list[_Flight] = []  # chunks claimed whose answers are not recorded yet
        self.halted = False  # an outcome unknown, or a fatal producer error: claim no more
        self.hurried = False  # interrupted again while waiting for answers: wait no more

    def send(
        self,
        letters: list[Letter],
        rate_per_second: float,
        size: int,
        cancelled: Callable[[], bool],
        done: int,
    ) -> None:
        """Chunk by chunk (`size` letters): claim (which reads what to send) and hand the chunk
        to Kafka at once; then record Kafka's answers to the chunk before, so the next claim
        runs while Kafka answers. The rate is kept by spacing the hand-overs; a cancelled
        replay, or one halted (a letter's outcome unknown, or the producer failed for good),
        records the rest as not sent.
        Interrupted (Ctrl-C, an error), it still records the answers to what it handed over,
        and puts back what it claimed and did not."""
        if not letters:
            return
        producer = clients.producer(
            self.settings, "finsync-dlq-replay", **{"message.timeout.ms": GIVE_UP_MS}
        )
        self.done = done
        try:
            for start in range(0, len(letters), size):
                if self.flights and rate_per_second > 0:
                    last = self.flights[-1]
                    pause = len(last.chunk) / rate_per_second - (time.monotonic() - last.handed)
                    if pause > 0:
                        time.sleep(pause)
                if cancelled() or self.halted:
                    self._settle_all()
                    rest = [x.id for x in letters[start:]]
                    for i in rest:
                        self.outcomes[i] = HALTED if self.halted else CANCELLED
                    record_outcomes(self.conn, self.rows, self.outcomes, rest, {}, None)
                    self.progress(self.done + len(rest))
                    return
                flight = self._take(letters[start : start + size], producer)
                flight.sending.produce(flight.messages(self.replay_id))
                if any(a.refused and halts(a) for a in flight.sending.outcomes):
                    self.halted = True  # the producer failed for good: no other chunk is claimed
                while len(self.flights) > 1:
                    self._settle(self.flights[0])
            self._settle_all()
        finally:
            for flight in list(self.flights):  # interrupted: no progress is told
                # The error that interrupted the replay is the one raised. A second one (a
                # second Ctrl-C) while recording a chunk rolls that recording back: it is tried
                # once more (the answers are in by then), and the other chunks are recorded.
                for _ in range(2):
                    try:
                        self._settle(flight, quiet=True)
                        break
                    except BaseException:  # the first error is the one raised
                        continue

    def _take(self, chunk: list[Letter], producer: Any) -> _Flight:
        """Claim the chunk's letters and register them, in one transaction: interrupted before
        it commits, nothing is claimed; after, the flight is known and its letters are put back
        if they never reach Kafka."""
        with self.conn.transaction():
            claimed, claimed_at = claim(self.conn, chunk)
            flight = _Flight(
                chunk=chunk,
                claimed=[claimed[x.id] for x in chunk if x.id in claimed],
                before={x.id: x.status for x in chunk if x.id in claimed},
                claimed_at=claimed_at,
                handed=0.0,
                sending=clients.Sending(producer, timeout=WAIT),
            )
            self.flights.append(flight)
        flight.handed = time.monotonic()
        return flight

    def _settle_all(self) -> None:
        while self.flights:
            self._settle(self.flights[0])

    def _settle(self, flight: _Flight, quiet: bool = False) -> None:
        """Wait for Kafka's answers to a chunk and record them. A letter Kafka refused, or never
        handed over, goes back to what it was (one never handed over keeps its audit row as
        intended); one whose answer did not come stays replayed, for it may have been sent."""
        if not quiet:
            flight.sending.wait()
        elif not self.hurried:  # after an interruption: record what came, whatever stops the
            try:  # wait; a second Ctrl-C cuts short this wait and the later ones
                flight.sending.wait()
            except BaseException:
                self.hurried = True
        answers = flight.sending.outcomes
        unsent = {claimed.id for claimed in flight.claimed[len(answers) :]}
        back = set(unsent)  # and those Kafka's answer says were not written
        for claimed, answer in zip(flight.claimed, answers, strict=False):
            self.outcomes[claimed.id] = outcome(answer)
            self.halted = self.halted or halts(answer)
            if _not_written(answer):
                back.add(claimed.id)
        for x in flight.chunk:
            if x.id not in flight.before:
                self.outcomes[x.id] = TAKEN
        ids = [x.id for x in flight.chunk if x.id not in unsent]
        record_outcomes(
            self.conn, self.rows, self.outcomes, ids, flight.before, flight.claimed_at, back
        )
        self.flights.remove(flight)
        self.done += len(ids)
        if not quiet:
            self.progress(self.done)


def outcome(answer: clients.Delivery) -> str:
    """A letter's outcome from Kafka's answer: only a refusal that says the message was not
    written (refused by the producer at once, or a message the broker can never take) lets the
    letter go back; anything else (no answer, a timeout, an error that may follow a write that
    timed out) leaves it replayed rather than risk sending it twice."""
    if answer.error is None:
        return "replayed"
    if _not_written(answer):
        return FAILED + answer.error.str()
    return UNKNOWN.format(answer.error.str())


def halts(answer: clients.Delivery) -> bool:
    """Whether the replay claims no more after this answer: one that leaves the letter's
    outcome unknown (Kafka may be unreachable), or a producer failed for good."""
    if answer.error is None:
        return False
    return answer.error.code() == KafkaError._FATAL or not _not_written(answer)


def _not_written(answer: clients.Delivery) -> bool:
    return answer.refused or (answer.error is not None and answer.error.code() in clients.REJECTED)


class Claimed(NamedTuple):
    """A letter claimed, with what its message is built from (see claim())."""

    id: int
    service: str
    key: bytes | None
    value: bytes | None
    header_keys: list[str]
    header_values: list[bytes | None]
    topic: str
    partition: int
    offset: int
    timestamp: datetime | None


@dataclass
class _Flight:
    """A chunk claimed: its letters, the letters claimed (in the chunk's order) and their
    statuses before, when it was handed to Kafka (hand-overs are spaced for the rate), and
    Kafka's answers as they come."""

    chunk: list[Letter]
    claimed: list[Claimed]
    before: dict[int, str]
    claimed_at: datetime | None  # the letters' updated_at, set by the claim
    handed: float
    sending: clients.Sending

    def messages(self, replay_id: str) -> Iterator[Outgoing]:
        """The message of each letter claimed, built as it is handed over."""
        for x in self.claimed:
            origin = Origin(x.topic, x.partition, x.offset, _ms(x.timestamp), 0, None)
            headers = list(zip(x.header_keys, x.header_values, strict=True))
            yield replay_message(x.service, x.key, x.value, headers, origin, replay_id, x.id)


def claim(
    conn: psycopg.Connection, letters: list[Letter]
) -> tuple[dict[int, Claimed], datetime | None]:
    """open (or, forced, whatever it was) -> replayed, only for letters unchanged since they
    were chosen (same status, same updated_at): a second replay of the same letters, or an
    operator's change meanwhile, makes this one skip them. Locked in id order, as the runtime
    locks them. Returns what is needed to build the message of each letter claimed, read in
    the same statement, and the updated_at the claim gave them."""
    rows = conn.execute(
        "UPDATE finsync.dead_letters d SET status = 'replayed', updated_at = now() "
        "FROM (SELECT (r->>0)::bigint AS id, r->>1 AS status, (r->>2)::timestamptz AS seen "
        "FROM jsonb_array_elements(%s::jsonb) AS r) AS x "
        "WHERE d.id = x.id AND d.status = x.status AND d.updated_at = x.seen "
        "AND d.id IN (SELECT id FROM finsync.dead_letters WHERE id = ANY(%s::bigint[]) "
        "ORDER BY id FOR UPDATE) "
        "RETURNING d.id, d.service, d.key, d.value, d.header_keys, d.header_values, "
        "d.source_topic, d.source_partition, d.source_offset, d.source_timestamp, d.updated_at",
        (
            bulk.rows_document([[x.id, x.status, x.updated_at.isoformat()] for x in letters]),
            "{" + ",".join(str(x.id) for x in letters) + "}",  # one text parameter, see the module
        ),
        prepare=False,
    ).fetchall()
    return {r[0]: Claimed(*r[:-1]) for r in rows}, rows[0][-1] if rows else None


def _ms(at: datetime | None) -> int:
    return int(at.timestamp() * 1000) if at is not None else 0


def record_outcomes(
    conn: psycopg.Connection,
    rows: dict[int, int],
    outcomes: dict[int, str],
    ids: list[int],
    before: dict[int, str],
    claimed_at: datetime | None,
    back: Collection[int] = (),
) -> None:
    """The outcome of each of `ids`; the claimed letters in `back` (never handed to Kafka, or
    surely not written) go back to the status they had (`before`), unless something else
    changed them since their claim (`claimed_at`)."""
    with conn.transaction():
        conn.execute(
            "UPDATE finsync.replay_audit a SET outcome = x.r->>1, finished_at = now() "
            "FROM jsonb_array_elements(%s::jsonb) AS x(r) WHERE a.id = (x.r->>0)::bigint",
            (bulk.rows_document([[rows[i], outcomes[i]] for i in ids]),),
            prepare=False,
        )
        if back:
            ordered = sorted(back)
            conn.execute(
                "UPDATE finsync.dead_letters d SET status = x.status, updated_at = now() "
                "FROM unnest(%s::bigint[], %s::text[]) AS x(id, status) "
                "WHERE d.id = x.id AND d.id IN (SELECT id FROM finsync.dead_letters "
                "WHERE id = ANY(%s) AND status = 'replayed' AND updated_at = %s "
                "ORDER BY id FOR UPDATE)",
                (ordered, [before[i] for i in ordered], ordered, claimed_at),
                prepare=False,
            )
