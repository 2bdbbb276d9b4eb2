"""Fuzzing all four services on the real stack: a bad event never stops a service, never stalls
a partition and never loses the events behind it.

Hostile inputs of every kind (`tests/fuzz_inputs.py`) ride on the keys of valid documents,
right before or after them, so they share their partitions. Then, exactly: every hostile input
is one dead letter, with a reason, on its own service's dead-letter topic; every valid document
took effect once in its system of record, and nothing else did; every partition was consumed to
its end; every service is still running and stops cleanly.

FINSYNC_FUZZ_INPUTS sets how many hostile inputs (1,000 by default); FINSYNC_FUZZ_SEED replays
a run's inputs (each run prints its seed).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finsync.contract.events import (
    AccountUpserted,
    CreditMemoIssued,
    Event,
    InvoiceIssued,
    OpportunityClosed,
    PaymentSettled,
)
from finsync.contract.topics import SERVICES, dlq_topic
from finsync.runtime import clients, db
from finsync.runtime import headers as h
from finsync.runtime.messages import Outgoing, Record
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests import fuzz_inputs as fuzz
from tests.support import ServiceProcess, TopicTail

INPUTS = int(os.environ.get("FINSYNC_FUZZ_INPUTS", "1000"))
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300 + INPUTS // 10)]

# Short retries: nothing valid waits for anything, and whatever would, ends within seconds.
ENV = {"FINSYNC_RETRY_BASE_SECONDS": "0.3", "FINSYNC_RETRY_BUDGET_SECONDS": "2"}
# Accounts and invoices depend on nothing; deals, credit memos and payments only on those.
PHASES = (
    (AccountUpserted.TOPIC, InvoiceIssued.TOPIC),
    (OpportunityClosed.TOPIC, CreditMemoIssued.TOPIC, PaymentSettled.TOPIC),
)
# Where each valid document takes effect: its system of record, and the id it is kept under.
RECORDED_IN = {
    AccountUpserted.TOPIC: ("finsync.account_xref", "account_id"),
    InvoiceIssued.TOPIC: ("erp.ar_open_items", "invoice_id"),
    OpportunityClosed.TOPIC: ("billing.subscriptions", "opportunity_id"),
    CreditMemoIssued.TOPIC: ("erp.ar_credits", "credit_memo_id"),
    PaymentSettled.TOPIC: ("erp.payments", "payment_id"),
}
PATIENCE = 60 + INPUTS / 50  # seconds a stage may take before it counts as stalled

Check = Callable[[], tuple[bool, str]]  # done?, and how far it got


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    running = [ServiceProcess(name, tmp_path, ENV).start(wait=False) for name in SERVICES]
    try:
        for service in running:
            service.wait_log("started", 90)
        yield running
    finally:
        for service in running:
            if service.running():
                service.stop()


@pytest.fixture
def dead_letters(settings: Settings) -> Iterator[dict[str, TopicTail]]:
    """What arrives on each service's dead-letter topic from now on."""
    tails = {s: TopicTail(settings, dlq_topic(s)) for s in SERVICES}
    yield tails
    for tail in tails.values():
        tail.close()


def _wait(services: list[ServiceProcess], check: Check, what: str) -> None:
    """Until `check` passes; failing at once if a service exits, or after PATIENCE."""
    deadline = time.monotonic() + PATIENCE
    while True:
        for s in services:
            assert s.running(), f"{s.name} exited with {s.proc and s.proc.poll()}; see {s.log}"
        done, progress = check()
        if done:
            return
        assert time.monotonic() < deadline, f"stalled waiting for {what}: {progress}"
        time.sleep(0.5)


def _ids(settings: Settings, topic: str, where: str, param: object) -> Counter[str]:
    """The ids kept in the system of record of `topic` that match `where`, with how often."""
    table, column = RECORDED_IN[topic]
    with db.connect(settings) as conn:
        rows = conn.execute(f"SELECT {column} FROM {table} WHERE {column} {where}", (param,))
        return Counter(r[0] for r in rows)


def _took_effect(settings: Settings, topic: str, ids: list[str]) -> Check:
    def check() -> tuple[bool, str]:
        n = sum(_ids(settings, topic, "= ANY(%s)", ids).values())
        return n >= len(ids), f"{n}/{len(ids)}"

    return check


def _case(record: Record) -> str:
    return record.header_text(fuzz.HEADER) or ""


def _fault(letter: Record, hostile: fuzz.Hostile) -> str | None:
    """What is wrong with the dead letter of a hostile input, if anything."""
    if not letter.header_text(h.ERR_EXCEPTION_MESSAGE):
        return "no reason"
    if letter.header_text(h.ERR_CLASS) != "permanent":  # none of them waits for anything
        return f"dead-lettered as {letter.header_text(h.ERR_CLASS)}"
    if letter.header_text(h.ERR_TOPIC) != hostile.topic:
        return f"said to come from {letter.header_text(h.ERR_TOPIC)}"
    return None


def test_hostile_input_never_stops_a_service_stalls_a_partition_or_loses_what_is_behind_it(
    settings: Settings,
    serde: Serde,
    services: list[ServiceProcess],
    dead_letters: dict[str, TopicTail],
) -> None:
    seed = int(os.environ.get("FINSYNC_FUZZ_SEED") or random.SystemRandom().getrandbits(32))
    tag = f"fz{uuid.uuid4().hex[:8]}"  # ids of this run, so runs add up on a shared stack
    print(f"fuzz: seed {seed} (FINSYNC_FUZZ_SEED), {INPUTS} hostile inputs, run tag {tag}")
    started = time.monotonic()
    rng = random.Random(seed)
    books = fuzz.books(rng, tag, chains=max(12, INPUTS // 20))
    frames = {t: serde.encode(books.of(t)[0])[:5] for t in fuzz.TOPICS}
    inputs = fuzz.hostile(rng, books, frames, INPUTS)
    case = {f"{tag}/{x.n}": x for x in inputs}  # each input is named in a header of its own

    def message(item: fuzz.Hostile | Event) -> Outgoing:
        if isinstance(item, fuzz.Hostile):
            named = [(fuzz.HEADER, f"{tag}/{item.n}".encode()), *item.headers]
            return Outgoing(item.topic, item.key, item.value, named)
        named = [(fuzz.HEADER, f"{tag}/valid".encode()), *books.copied.get(item.key, [])]
        return serde.outgoing(item, named)

    producer = clients.producer(settings, "test-fuzz")
    for topics in PHASES:
        clients.send(producer, map(message, fuzz.interleaved(books, inputs, topics)), 120)
        for topic in topics:  # the valid documents behind the hostile ones take effect
            ids = [e.key for e in books.of(topic)]
            _wait(services, _took_effect(settings, topic, ids), f"{topic} to take effect")

    letters: dict[str, list[Record]] = {}

    def all_dead() -> tuple[bool, str]:
        for service, tail in dead_letters.items():
            letters[service] = [r for r in tail.poll(0.5) if _case(r).startswith(f"{tag}/")]
        seen = {_case(r) for rs in letters.values() for r in rs}
        missing = Counter(x.kind for c, x in case.items() if c not in seen)
        return not missing, f"not dead-lettered yet, by kind: {dict(missing)}"

    def consumed() -> tuple[bool, str]:
        lag = {
            s: clients.group_lag(settings, s, [t for t, x in fuzz.SERVICE_OF.items() if x == s])
            for s in SERVICES
        }
        return not any(lag.values()), f"records not consumed yet: {lag}"

    _wait(services, all_dead, "every hostile input to be dead-lettered")
    _wait(services, consumed, "every partition to be consumed to its end")
    elapsed = time.monotonic() - started

    # Each hostile input once, on its own service's dead-letter topic, at once and with a reason;
    # no valid document among them.
    where = Counter((s, _case(r)) for s, rs in letters.items() for r in rs)
    wrong = [
        (c, s, n) for (s, c), n in where.items() if n != 1 or c not in case or case[c].service != s
    ]
    assert wrong == [], "(input, dead-letter topic, times): not once, elsewhere, or valid"
    faults = Counter(
        (case[_case(r)].kind, fault)
        for rs in letters.values()
        for r in rs
        if (fault := _fault(r, case[_case(r)]))
    )
    assert faults == {}, "(kind, what is wrong with its dead letters): how many"

    # Each valid document took effect once, and nothing else of the run did: a hostile input
    # that took effect would show under an id of the run, or as a second effect.
    for topic in fuzz.TOPICS:
        expected = Counter(e.key for e in books.of(topic))
        assert _ids(settings, topic, "LIKE %s", books.like()) == expected, topic
    with db.connect(settings) as conn:
        journals: Any = conn.execute(
            "SELECT idempotency_key, count(*) FROM erp.journal_entries "
            "WHERE idempotency_key LIKE %s GROUP BY 1",
            (books.like(),),
        ).fetchall()
        versions: Any = conn.execute(
            "SELECT account_id, version FROM finsync.account_xref WHERE account_id LIKE %s",
            (books.like(),),
        ).fetchall()
    expected_journals = [f"invoice:{i.invoice_id}" for i in books.invoices]
    expected_journals += [f"credit-memo:{m.credit_memo_id}" for m in books.credit_memos]
    expected_journals += [f"payment:{p.payment_id}" for p in books.payments]
    assert dict(journals) == dict.fromkeys(expected_journals, 1)
    assert dict(versions) == {a.account_id: 1 for a in books.accounts}

    # No service stopped, and each stops cleanly.
    for service in services:
        assert service.running(), f"{service.name} exited"
        assert service.stop() == 0, f"{service.name} did not stop cleanly"

    kinds = ", ".join(f"{k} {n}" for k, n in Counter(x.kind for x in inputs).items())
    per_service = ", ".join(f"{s} {len(rs)}" for s, rs in letters.items())
    valid = {t: len(books.of(t)) for t in fuzz.TOPICS}
    print(
        f"fuzz summary: seed {seed}; {INPUTS} hostile inputs ({kinds}); "
        f"dead-lettered {sum(where.values())}/{INPUTS} ({per_service}); "
        f"valid taken effect once {sum(valid.values())}/{sum(valid.values())} "
        f"({', '.join(f'{t} {n}' for t, n in valid.items())}; "
        f"{len(books.copied)} of them under copied retry headers); elapsed {elapsed:.1f} s"
    )
