"""The order-to-cash scenario at volume, played while faults hit the stack and the services.

The stages of `finsync.scenario.stages`, with what chaos and volume need on top:
- every step an upstream system takes (publishing, billing's invoice run and credit memos,
  reading back what billing sent) is repeated until it gets through an outage, as a real
  publisher would. Repeats are safe: services dedupe by event id and document key;
- waiting for a stage rides out outages, and reports a stall only when nothing has moved for
  STALL seconds, longer than any fault lasts: under chaos a stall is a finding;
- CRM sends its accounts first and its deals once those are in: at this volume, deals sent
  with the accounts would nearly all wait in retry behind them. Children still come before
  their parents, and the late accounts after their deals;
- the early card payments settle right after billing's invoice run, while its invoices are
  on their way to the ERP: sent before a run that bills thousands of subscriptions, they
  would wait longer than any sensible retry budget.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import LiteralString

import psycopg

from finsync.contract.events import (
    AccountUpserted,
    CreditMemoIssued,
    Event,
    InvoiceIssued,
    PaymentSettled,
)
from finsync.contract.topics import SERVICES
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import clients, db
from finsync.runtime.messages import Outgoing
from finsync.runtime.relay import Relay
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario.billing import malformed_invoices, predicted_invoices, tax_rates
from finsync.scenario.chaos.outages import outage, persist
from finsync.scenario.gateway import PaymentPlan, early_payments
from finsync.scenario.outcome import Outcome, dead_keys
from finsync.scenario.plan import UNREADABLE, Scenario
from finsync.scenario.stages import load_sample_rates
from finsync.settings import Settings

Say = Callable[[str], None]

STALL = 300.0  # seconds without progress before a stage counts as stuck
SAY_EVERY = 10.0  # seconds between progress lines of a stage

PROGRESS_SQL: LiteralString = (
    "SELECT (SELECT count(*) FROM finsync.account_xref WHERE account_id LIKE %(like)s)"
    " + (SELECT count(*) FROM billing.subscriptions WHERE opportunity_id LIKE %(like)s)"
    " + (SELECT count(*) FROM erp.ar_open_items WHERE invoice_id LIKE %(like)s)"
    " + (SELECT count(*) FROM erp.payments WHERE payment_id LIKE %(like)s)"
)


def expected_events(s: Scenario, rates: dict[str, Decimal]) -> tuple[int, int]:
    """(events the run will send, invoices among them): CRM's, billing's invoices, and
    payments and credit memos for about nine in ten of them."""
    invoices = sum(
        len(predicted_invoices(o, s.as_of, rates[o.legal_entity])) for o in s.opportunities
    )
    return len(s.crm) + len(s.late_accounts) + round(1.9 * invoices), invoices


class Flow:
    def __init__(self, settings: Settings, scenario: Scenario, say: Say) -> None:
        self.settings = settings
        self.s = scenario
        self.say = say
        self.serde = Serde(registry_client(settings))
        self.producer = clients.producer(settings, "finsync-chaos")
        self.outcome = Outcome(scenario, started_ms=int(time.time() * 1000) - 1000)
        self.published = 0  # events the run sent itself, not counting re-sends
        self._effects = 1  # effects the run expects, for progress()
        self._progress = 0.0
        # Found out on the way: what billing charges, what the gateway pays.
        self.rates: dict[str, Decimal] = {}
        self.early: list[PaymentSettled] = []
        self.plan = PaymentPlan({}, [], {})

    def expect(self, rates: dict[str, Decimal]) -> None:
        _, invoices = expected_events(self.s, rates)
        self._effects = len(self.s.expected.versions) + len(self.s.expected.activated)
        self._effects += 2 * invoices  # each posted, and (about) each paid

    @property
    def events(self) -> int:
        """Events sent to the services: the run's own, and billing's invoices and memos."""
        return self.published + len(self.outcome.invoices) + len(self.outcome.credit_memos)

    def progress(self) -> float:
        """Share of the run's effects that have happened (the last known one in an outage)."""
        try:
            with db.connect(self.settings) as conn:
                row = conn.execute(PROGRESS_SQL, {"like": self.s.like()}).fetchone()
            self._progress = min(1.0, (row[0] if row else 0) / self._effects)
        except Exception as exc:
            if not outage(exc):
                raise
        return self._progress

    def in_retry(self) -> int:
        """Records waiting in the services' retry topics now (-1 in an outage)."""
        try:
            with db.connect(self.settings) as conn:
                row = conn.execute("SELECT count(*) FROM finsync.parked").fetchone()
        except Exception as exc:
            if not outage(exc):
                raise
            return -1
        return int(row[0]) if row else 0

    def publish(self, items: Sequence[Event | Outgoing]) -> None:
        def encode() -> list[Outgoing]:
            return [i if isinstance(i, Outgoing) else self.serde.outgoing(i) for i in items]

        remaining = persist("encoding", encode, self.say)
        self.published += len(remaining)

        def send() -> None:  # only what Kafka has not accepted yet goes again
            nonlocal remaining
            outcomes = clients.deliver(self.producer, remaining, timeout=30)
            remaining = [m for m, err in zip(remaining, outcomes, strict=True) if err]
            if remaining:
                raise clients.DeliveryError(f"{len(remaining)} messages not accepted yet")

        persist("publishing", send, self.say)

    def wait(self, what: str, check: Callable[[], tuple[int, int]]) -> bool:
        """Until check() gives (n, wanted) with n >= wanted; False on a stall."""
        moved = said = time.monotonic()
        last = (-1, -1)
        while True:
            try:
                now = check()
            except Exception as exc:
                if not outage(exc):
                    raise
            else:
                if now != last:
                    last, moved = now, time.monotonic()
                if last[0] >= last[1] or time.monotonic() - said > SAY_EVERY:
                    self.say(f"{what}: {last[0]}/{last[1]}")
                    said = time.monotonic()
                if last[0] >= last[1]:
                    return True
            if time.monotonic() - moved > STALL:
                self.outcome.waiting_for = f"{what} ({last[0]}/{last[1]})"
                return False
            time.sleep(1.0)

    def _count(self, sql: LiteralString, ids: Sequence[str]) -> Callable[[], tuple[int, int]]:
        """A check for wait(): how many of `ids` `sql` (with `= ANY(%s)`) counts."""

        def check() -> tuple[int, int]:
            with db.connect(self.settings) as conn:
                row = conn.execute(sql, (list(ids),)).fetchone()
            return (int(row[0]) if row else 0), len(ids)

        return check

    def _dead(self, *services: str) -> Callable[[], tuple[int, int]]:
        """A check for wait(): how many of the expected dead letters have arrived."""

        def check() -> tuple[int, int]:
            want = {sv: self.s.expected.dead.get(sv, {}) for sv in services}
            got = {sv: dead_keys(self.settings, self.s, sv, self.outcome.started_ms)
                   for sv in services}  # fmt: skip
            seen = sum(len(set(got[sv]) & set(want[sv])) for sv in services)
            return seen, sum(len(w) for w in want.values())

        return check

    def _sent(self, topic: str) -> list[Event]:
        """What billing sent on `topic` in this run, once per document."""
        latest = {
            r.key_text: r
            for r in clients.read(self.settings, topic, self.outcome.started_ms)
            if self.s.owns(r.key_text)
        }
        return [self.serde.decode(topic, latest[k].value) for k in sorted(latest, key=str)]

    def _credit(self, invoice_id: str, line_id: str) -> None:
        # UniqueViolation: issued by an attempt that failed to publish; billing's relay sends it.
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            billing_jobs.issue_credit_memo(
                self.settings, invoice_id, line_id, "service credit", self.s.as_of
            )

    def play(self) -> Outcome:
        """The stages, each waiting for its effects; the expected dead letters are awaited
        once, at the end, so their retry budgets run out while the later stages play."""
        started = time.monotonic()
        try:
            self.outcome.complete = (
                self._crm()
                and self._billing()
                and self._payments()
                and self.wait("expected dead letters", self._dead(*SERVICES))
            )
        finally:
            self.outcome.elapsed = time.monotonic() - started
        return self.outcome

    def _crm(self) -> bool:
        s = self.s
        xref = "SELECT count(*) FROM finsync.account_xref WHERE account_id = ANY(%s)"
        late = {a.account_id for a in s.late_accounts}
        accounts = [e for e in s.crm if _topic(e) == AccountUpserted.TOPIC]
        deals = [e for e in s.crm if _topic(e) != AccountUpserted.TOPIC]
        self.say(f"CRM publishes {len(accounts) + len(late)} account events, {len(deals)} deals")
        self.publish(accounts)
        if not self.wait("accounts", self._count(xref, sorted(set(s.expected.versions) - late))):
            return False
        self.publish(deals)
        time.sleep(2)  # the late accounts' deals go round the retry topic meanwhile
        self.publish(s.late_accounts)
        activated = "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = ANY(%s)"
        return self.wait(
            "late accounts", self._count(xref, sorted(s.expected.versions))
        ) and self.wait("subscriptions", self._count(activated, sorted(s.expected.activated)))

    def _billing(self) -> bool:
        s, say, out = self.s, self.say, self.outcome
        self.rates = persist("tax rates", functools.partial(tax_rates, self.settings), say)
        persist("FX rates", functools.partial(load_sample_rates, self.settings, say), say)
        say(f"billing's invoice run as of {s.as_of}")
        persist("invoice run", lambda: billing_jobs.run_invoices(self.settings, s.as_of), say)
        self.early = early_payments(s, self.rates)
        self.publish(self.early)  # ahead of their invoices' postings: they wait in retry
        invoices = persist("reading invoices", lambda: self._sent(InvoiceIssued.TOPIC), say)
        out.invoices = [i for i in invoices if isinstance(i, InvoiceIssued)]
        posted = "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = ANY(%s)"
        if not self.wait(
            "invoices posted", self._count(posted, [i.invoice_id for i in out.invoices])
        ):
            return False
        self.publish(malformed_invoices(s, out.invoices[0]))

        paid_early = {p.invoice_id for p in self.early}
        self.plan = PaymentPlan.make(s, out.invoices, paid_early, self.rates)
        say(f"billing issues {len(self.plan.credits)} credit memos")
        for invoice, line in self.plan.credits:
            persist("credit memo", functools.partial(self._credit, invoice.invoice_id, line), say)
        persist("billing's relay", Relay(billing_jobs.PUBLISHER, self.settings).drain, say)
        memos = persist("reading memos", lambda: self._sent(CreditMemoIssued.TOPIC), say)
        out.credit_memos = [m for m in memos if isinstance(m, CreditMemoIssued)]
        credited = "SELECT count(*) FROM erp.ar_credits WHERE credit_memo_id = ANY(%s)"
        ids = [m.credit_memo_id for m in out.credit_memos]
        return self.wait("credit memos posted", self._count(credited, ids))

    def _payments(self) -> bool:
        s, out = self.s, self.outcome
        payments = self.plan.payments(s, out.credit_memos)
        out.prepaid = self.plan.prepaid
        for p, error in self.plan.invalid:
            s.expected.dead_letter("payment-settler", p.payment_id, error)
        unreadable_key = f"PAY-{s.tag}-UNREADABLE"
        s.expected.dead_letter("payment-settler", unreadable_key, "UndecodableEvent")
        distinct = {p.payment_id: p for p in [*self.early, *payments]}
        s.expected.payments = set(distinct) - set(s.expected.dead["payment-settler"])
        out.payments = list(distinct.values())
        self.say(f"the gateway settles {len(payments)} payments")
        unreadable = Outgoing(PaymentSettled.TOPIC, unreadable_key.encode(), UNREADABLE)
        self.publish([*payments, unreadable])
        applied = "SELECT count(*) FROM erp.payments WHERE payment_id = ANY(%s)"
        return self.wait("payments applied", self._count(applied, sorted(s.expected.payments)))


def _topic(item: Event | Outgoing) -> str:
    return item.topic if isinstance(item, Outgoing) else item.TOPIC
