"""`make bench`, the other services: account-sync, subscription-activator and payment-settler,
each run as `finsync run <service>` runs it (every guarantee on) over N events of its source
topic, beside the ceiling measured over the same records in the same run (consume + decode).

The events follow the order-to-cash flow, made by the scenario's own generators, so that each
run takes the path real traffic takes (created, activated, paid), not the waiting or rejection
one; what a service needs first is made the way the flow makes it, untimed:

- account-sync: new CRM accounts, made as the scenario makes its own, none a duplicate;
- subscription-activator: one closed-won opportunity per account, those accounts synced;
- payment-settler: billing's invoice run over those subscriptions, posted by invoice-poster
  (timed too, as this run's yardstick), then one payment in full for N of the invoices.

Each run is timed as invoice-poster's: from its first effect committed to its last, with every
output event published (its outbox empty). Then its effects are counted: N of each, and no
record retried or dead-lettered, or the bench fails. The services write to `finsync_bench`.

    FINSYNC_BENCH_SERVICE_EVENTS=20000 python -m finsync.bench.services
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, LiteralString

from confluent_kafka import Message
from rich.console import Console
from rich.table import Table

from finsync.bench import results as bench_results
from finsync.bench.invoice_poster import (
    Offsets,
    bench_settings,
    catch_up,
    consume_range,
    end_offsets,
    point_group,
    reset_database,
    stop,
)
from finsync.contract import events as ev
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import clients, db
from finsync.runtime.runner import load
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario import crm
from finsync.scenario.crm import company_name
from finsync.scenario.gateway import payment
from finsync.scenario.opportunities import opportunity
from finsync.scenario.plan import Scenario, envelope
from finsync.scenario.stages import load_sample_rates
from finsync.settings import Settings

console = Console() if sys.stdout.isatty() else Console(width=100)  # a log: the table unwrapped
SERVICES = ("account-sync", "subscription-activator", "invoice-poster", "payment-settler")
STALL_SECONDS = 120.0  # no effect committed nor published this long: the bench fails
POLL_SECONDS = 0.25  # polling more often took CPU from the service it measures
UNSENT: LiteralString = "SELECT count(*) FROM finsync.outbox WHERE service = %s AND sent_at IS NULL"


@dataclasses.dataclass(frozen=True)
class Check:
    """What a run must leave: `sql` counts, over the run's document ids, `n` rows."""

    what: str
    sql: LiteralString  # with `= ANY(%s)` over the ids


@dataclasses.dataclass(frozen=True)
class Stage:
    service: str
    events: Sequence[ev.Event]
    output: str  # the topic each event leads to one event on
    ids: list[str]  # the documents' ids, which the checks count
    checks: tuple[Check, ...]  # the first one measures progress


@dataclasses.dataclass(frozen=True)
class ServiceRun:
    service: str
    topic: str
    events: int
    seconds: float
    ceiling_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def ceiling_events_per_second(self) -> float:
        return self.events / self.ceiling_seconds

    @property
    def ratio(self) -> float:
        """Of the ceiling: the share of consume + decode's pace the service keeps."""
        return self.events_per_second / self.ceiling_events_per_second

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "topic": self.topic,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "ceiling_seconds": round(self.ceiling_seconds, 3),
            "ceiling_events_per_second": round(self.ceiling_events_per_second, 1),
            "ratio": round(self.ratio, 3),
        }


@dataclasses.dataclass(frozen=True)
class ServicesFigures:
    events: int  # per service
    runs: list[ServiceRun]
    invoices: int  # billing's run issued and invoice-poster posted, for the payments
    # invoice-poster over them, timed the same way: this run's yardstick, as the machine's
    # speed varies from run to run
    invoice_poster_seconds: float

    @property
    def invoice_poster_events_per_second(self) -> float:
        return self.invoices / self.invoice_poster_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "invoices_posted_first": self.invoices,
            "invoice_poster_events_per_second": round(self.invoice_poster_events_per_second, 1),
            "runs": [r.as_json() for r in self.runs],
        }


def _count(settings: Settings, sql: LiteralString, *params: object) -> int:
    with db.connect(settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def publish(settings: Settings, serde: Serde, topic: str, events: Sequence[ev.Event]) -> Offsets:
    """Produce `events` to `topic` and wait until Kafka has them all; the range they took."""
    probe = clients.consumer(settings, f"bench-probe-{uuid.uuid4()}")
    try:
        before = end_offsets(probe, topic)
        producer = clients.producer(settings, "finsync-bench-services")
        clients.send(producer, [serde.outgoing(e) for e in events], timeout=300)
        after = end_offsets(probe, topic)
    finally:
        probe.close()
    offsets = {p: (before[p], after[p]) for p in after}
    _expect(f"records of {topic} in the bench's range", _size(offsets), len(events))
    return offsets


def ceiling(settings: Settings, serde: Serde, topic: str, offsets: Offsets) -> float:
    """Consume and decode the range, as the service must before anything else."""

    def decode(msgs: list[Message]) -> None:
        for m in msgs:
            serde.decode(topic, m.value())

    return consume_range(settings, offsets, decode, False, topic)


def run_service(settings: Settings, stage: Stage, topic: str, offsets: Offsets) -> float:
    """`finsync run <service>` from the range's first record until every effect is committed
    and every output event published; seconds from the first effect committed to then."""
    n, progress = len(stage.ids), stage.checks[0]
    point_group(settings, stage.service, topic, offsets)
    env = {**os.environ, "FINSYNC_DATABASE_URL": settings.database_url}
    log_path = settings.home / "run" / f"bench-{stage.service}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "run", stage.service],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    started, last, moved = None, (-1, -1), time.monotonic()
    try:
        with console.status(f"{stage.service} ...") as status:
            while True:
                done = _count(settings, progress.sql, stage.ids)
                unsent = _count(settings, UNSENT, stage.service)
                if done and started is None:
                    started = time.perf_counter()
                status.update(f"{stage.service}: {done}/{n} {progress.what}, {unsent} unsent")
                if done >= n and unsent == 0:
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"{stage.service} exited during the bench; see {log_path}")
                if (done, unsent) != last:
                    last, moved = (done, unsent), time.monotonic()
                elif time.monotonic() - moved > STALL_SECONDS:
                    raise SystemExit(
                        f"{stage.service} stalled at {done}/{n} {progress.what}, {unsent} "
                        f"unsent; see {log_path} and `finsync dlq list`"
                    )
                time.sleep(POLL_SECONDS)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        stop([proc])


def verify(settings: Settings, stage: Stage) -> None:
    """Every effect is there, each event published exactly its one output event, and no
    record took the retry or dead-letter path."""
    n = len(stage.ids)
    for check in stage.checks:
        _expect(f"{stage.service}: {check.what}", _count(settings, check.sql, stage.ids), n)
    sent: LiteralString = (
        "SELECT count(*) FROM finsync.outbox WHERE service = %s AND topic = %s "
        "AND sent_at IS NOT NULL"
    )
    published = _count(settings, sent, stage.service, stage.output)
    _expect(f"{stage.service}: {stage.output} events published", published, n)
    other: LiteralString = "SELECT count(*) FROM finsync.outbox WHERE service = %s AND topic <> %s"
    _expect(f"{stage.service}: records retried or dead-lettered",
            _count(settings, other, stage.service, stage.output), 0)  # fmt: skip


def measure(settings: Settings, serde: Serde, stage: Stage) -> ServiceRun:
    topic = stage.events[0].TOPIC
    offsets = publish(settings, serde, topic, stage.events)
    top = ceiling(settings, serde, topic, offsets)
    took = run_service(settings, stage, topic, offsets)
    verify(settings, stage)
    return ServiceRun(stage.service, topic, len(stage.events), took, top)


SYNCED = (
    Check("accounts synced as new customers",
          "SELECT count(*) FROM finsync.account_xref WHERE account_id = ANY(%s) "
          "AND match_rule IS NULL"),
    Check("ERP customers", "SELECT count(*) FROM erp.customers WHERE account_id = ANY(%s)"),
    Check("billing accounts",
          "SELECT count(*) FROM billing.accounts WHERE account_id = ANY(%s)"),
)  # fmt: skip
ACTIVATED = (
    Check("subscriptions activated",
          "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = ANY(%s)"),
)  # fmt: skip
POSTED = (
    Check("invoices posted",
          "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = ANY(%s)"),
)  # fmt: skip
PAID = (
    Check("payments applied in full",
          "SELECT count(*) FROM erp.payments WHERE payment_id = ANY(%s) AND status = 'PAID'"),
)  # fmt: skip
METHODS = ("CARD", "WIRE", "SEPA_DEBIT")  # as the gateway pays invoices in full


def post_invoices(
    settings: Settings, as_of: date, say: Callable[[str], None]
) -> tuple[list[ev.InvoiceIssued], float]:
    """Billing's invoice run over the subscriptions, posted by invoice-poster: the invoices the
    payments pay, and the seconds invoice-poster took."""
    probe = clients.consumer(settings, f"bench-probe-{uuid.uuid4()}")
    try:
        before = end_offsets(probe, ev.InvoiceIssued.TOPIC)
        say(f"billing's invoice run as of {as_of} ...")
        issued = billing_jobs.run_invoices(settings, as_of).invoices
        after = end_offsets(probe, ev.InvoiceIssued.TOPIC)
    finally:
        probe.close()
    offsets = {p: (before[p], after[p]) for p in after}
    _expect("invoices billing published", _size(offsets), len(issued))
    ids = [i.invoice_id for i in issued]
    stage = Stage("invoice-poster", issued, ev.InvoicePosted.TOPIC, ids, POSTED)
    say(f"invoice-poster posts billing's {len(issued):,} invoices ...")
    took = run_service(settings, stage, ev.InvoiceIssued.TOPIC, offsets)
    verify(settings, stage)
    return issued, took


def new_accounts(s: Scenario, n: int) -> list[ev.AccountUpserted]:
    """`n` new CRM accounts, made as the scenario makes its own (regions, company names,
    envelope), each with a tax id of its own. Past a few thousand accounts the scenario's names
    repeat, and one that shares a tax id, or a name with an account without one, is rightly
    linked by account-sync as a duplicate instead of becoming a customer."""
    out = []
    for k, number in enumerate(s.rng.sample(range(10**8, 10**9), n), 1):
        entity, currency, countries = s.rng.choice(crm.REGIONS)
        country = s.rng.choice(countries)
        name = company_name(s.rng, country)
        account_id = f"ACC-{s.tag}-{k:05d}"
        fields = {**envelope("crm", f"acc-{account_id}"), "account_id": account_id, "name": name,
                  "country": country, "currency": currency, "tax_id": f"{country}{number}",
                  "email_domain": name.split()[0].lower() + ".example",
                  "legal_entity": entity, "version": 1}  # fmt: skip
        out.append(ev.AccountUpserted.model_validate(fields))
    return out


def run(stack: Settings, n: int, say: Callable[[str], None] = console.print) -> ServicesFigures:
    """The three services over `n` events each. `stack`: the local stack, whose own unprocessed
    events each group processes into its own books first."""
    settings = bench_settings(stack)
    serde = Serde(registry_client(settings))
    for service in SERVICES:
        catch_up(stack, service, tuple(load(service).handlers))
    reset_database(settings)
    load_sample_rates(settings, say)  # the UK entity bills its Irish customers in euros
    # The scenario gives the run its tag, seeded randomness and date; its own few accounts
    # (duplicates, orphans, malformed ones among them) are not sent.
    s = crm.build(n, f"bsv{uuid.uuid4().hex[:6]}", date.today())
    accounts = new_accounts(s, n)
    deals = [opportunity(s.rng, s.tag, k, a, s.as_of) for k, a in enumerate(accounts, 1)]

    runs: list[ServiceRun] = []
    ids = [a.account_id for a in accounts]
    stage = Stage("account-sync", accounts, ev.CustomerSynced.TOPIC, ids, SYNCED)
    runs.append(measure(settings, serde, stage))
    ids = [o.opportunity_id for o in deals]
    stage = Stage("subscription-activator", deals, ev.SubscriptionActivated.TOPIC, ids, ACTIVATED)
    runs.append(measure(settings, serde, stage))

    invoices, posting = post_invoices(settings, s.as_of, say)
    if len(invoices) < n:
        raise SystemExit(f"billing's run issued {len(invoices)} invoices, fewer than {n}")
    payments = []
    for k, i in enumerate(s.rng.sample(invoices, n), 1):  # each paid in full, as it is due
        method = s.rng.choice(METHODS)
        args = (i.account_id, i.invoice_id, i.total, i.currency, method, i.correlation_id)
        payments.append(payment(s, k, *args))
    ids = [p.payment_id for p in payments]
    stage = Stage("payment-settler", payments, ev.PaymentApplied.TOPIC, ids, PAID)
    runs.append(measure(settings, serde, stage))
    return ServicesFigures(n, runs, len(invoices), posting)


def _size(offsets: Offsets) -> int:
    return sum(end - first for first, end in offsets.values())


def _expect(what: str, got: int, want: int) -> None:
    if got != want:
        raise SystemExit(f"services bench: {what}: {got}, expected {want}")


def table(figures: ServicesFigures) -> Table:
    columns = ("service", "events", "seconds", "events/s", "ceiling events/s", "ratio")
    title = f"Services over {figures.events:,} events each, beside consume + decode (ceiling)"
    yardstick = (
        f"invoice-poster over billing's {figures.invoices:,} invoices in the same run: "
        f"{figures.invoice_poster_events_per_second:,.0f} events/s"
    )
    out = Table(*columns, title=title, caption=yardstick)
    for r in figures.runs:
        rates = (f"{r.events_per_second:,.0f}", f"{r.ceiling_events_per_second:,.0f}")
        out.add_row(r.service, f"{r.events:,}", f"{r.seconds:.2f}", *rates, f"{r.ratio:.3f}")
    return out


def main() -> int:
    n = int(os.environ.get("FINSYNC_BENCH_SERVICE_EVENTS", "20000"))
    console.rule(f"[bold]finsync bench[/bold] — services, {n} events each")
    figures = run(Settings.from_env(), n)
    console.print(table(figures))
    path = bench_results.save("services", figures.as_json())
    console.print(f"figures saved in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
