"""One chaos run: the scenario at volume through the four services while the monkey injects
its faults; then everything settles, the stack is made whole, and the books are read back.

The services write to the stack's scratch database (`finsync_bench`, reset first, as
`make bench` does), so a run of a hundred thousand events leaves the books of the stack —
and the invoice runs of later tests — alone.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from finsync import stack
from finsync.bench.invoice_poster import bench_settings, reset_database
from finsync.contract.topics import SERVICES, retry_topic
from finsync.runtime import clients, db, outbox, runner
from finsync.scenario import crm
from finsync.scenario.billing import tax_rates
from finsync.scenario.chaos import infra
from finsync.scenario.chaos.fleet import Fleet
from finsync.scenario.chaos.flow import Flow, expected_events
from finsync.scenario.chaos.monkey import Monkey, schedule
from finsync.scenario.chaos.outages import outage
from finsync.scenario.chaos.verdict import Figures, figures
from finsync.scenario.plan import Scenario
from finsync.settings import Settings
from finsync.stack.process import StackError

Say = Callable[[str], None]

PROBE_ACCOUNTS = 1000  # a scenario this size tells how many events an account brings
SETTLE = 600.0  # seconds for the services to finish after the last fault


@dataclass(frozen=True)
class Config:
    events: int = 100_000
    kills: int = 5  # SIGKILLs per service
    registry_seconds: float = 30.0  # how long the registry stays stopped
    seed: int = 7

    def service_env(self, database_url: str) -> dict[str, str]:
        """Retries fast enough that the expected dead letters arrive within the run, with
        budgets longer than any valid wait plus the faults around it. A child account may
        wait for its parent behind the whole account stream, so the budget grows with the
        volume; a payment waits at most for its invoice's posting, so payment-settler's is
        shorter — and its expected dead letters, sent last, set the end of the run.
        Variables already set win."""
        defaults = {
            "FINSYNC_RETRY_BASE_SECONDS": "0.5",
            "FINSYNC_RETRY_MAX_SECONDS": "10",
            "FINSYNC_RETRY_BUDGET_SECONDS": str(90 + self.events // 500),
            "FINSYNC_RETRY_BUDGET_SECONDS_PAYMENT_SETTLER": str(60 + self.events // 1000),
        }
        if "FINSYNC_RETRY_BUDGET_SECONDS" in os.environ:  # one budget chosen for all
            del defaults["FINSYNC_RETRY_BUDGET_SECONDS_PAYMENT_SETTLER"]
        env = {k: v for k, v in defaults.items() if k not in os.environ}
        return {**env, "FINSYNC_DATABASE_URL": database_url}


def sized(events: int, seed: int, rates: dict[str, Decimal]) -> Scenario:
    """The order-to-cash scenario with as many accounts as make about `events` events."""
    probe = crm.build(seed, "probe", date.today(), PROBE_ACCOUNTS)
    per_account = expected_events(probe, rates)[0] / PROBE_ACCOUNTS
    accounts = max(crm.MIN_ACCOUNTS, round(events / per_account))
    return crm.build(seed, None, date.today(), accounts)


def settle(settings: Settings, say: Say) -> str:
    """Wait until every service has consumed its topics, its retries included, published its
    outbox and holds nothing in retry; returns what is still left ("" when nothing)."""
    topics = {name: [*runner.load(name).handlers, retry_topic(name)] for name in SERVICES}

    def left() -> str:
        lag = {name: clients.group_lag(settings, name, t) for name, t in topics.items()}
        with db.connect(settings) as conn:
            backlog = outbox.backlog(conn)
            row = conn.execute("SELECT count(*) FROM finsync.parked").fetchone()
        parts = [f"{name}: {n} records not consumed" for name, n in lag.items() if n]
        parts += [f"{name}: {n} outbox messages not published" for name, n in backlog.items()]
        parts += [f"{row[0]} records waiting in retry"] if row and row[0] else []
        return "; ".join(parts)

    deadline, last = time.monotonic() + SETTLE, "not looked yet"
    while time.monotonic() < deadline:
        try:
            last = left()
        except Exception as exc:
            if not outage(exc):
                raise
        if not last:
            return ""
        time.sleep(2.0)
    return last


def run(config: Config, logs: Path, say: Say) -> Figures:
    settings = Settings.from_env()
    down = [name for name, healthy, _ in stack.status(settings) if not healthy]
    if down:
        raise StackError(f"the stack is not up ({', '.join(down)}): run `make up` first")
    chaos_db = bench_settings(settings)
    reset_database(chaos_db)
    rates = tax_rates(chaos_db)
    scenario = sized(config.events, config.seed, rates)
    flow = Flow(chaos_db, scenario, say)
    flow.expect(rates)
    fleet = Fleet(SERVICES, logs, config.service_env(chaos_db.database_url), say)
    faults = schedule(SERVICES, config.kills, random.Random(config.seed))
    monkey = Monkey(faults, fleet, settings, flow, config.registry_seconds, say)
    planned = Counter(f.kind for f in faults)
    say(
        f"run {scenario.tag}: about {expected_events(scenario, rates)[0]:,} events from "
        f"{len(scenario.expected.versions):,} accounts; {len(faults)} faults; service logs "
        f"in {logs}"
    )
    outcome = flow.outcome
    started = time.monotonic()
    try:
        fleet.start()
        monkey.start()
        flow.play()
        if outcome.complete:
            monkey.finish()
            say("every fault injected; waiting for the services to settle")
            left = settle(chaos_db, say)
            if left:
                outcome.complete, outcome.waiting_for = False, f"the services to settle ({left})"
    finally:
        monkey.abort()
        fleet.stop()
        infra.heal(settings, say)  # the stack is left as it was found: up
        parts = stack.status(settings)
        say("stack: " + ", ".join(f"{n} {'up' if ok else '[red]DOWN[/red]'}" for n, ok, _ in parts))
    elapsed = time.monotonic() - started
    return figures(chaos_db, outcome, flow.events, elapsed, monkey.injected, planned, fleet.exits)
