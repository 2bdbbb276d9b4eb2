"""Playing a scenario through the running services, stage by stage: each source publishes,
then the run waits until what it sent has arrived in the systems of record and the expected
dead letters on their topics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import LiteralString

from finsync.contract.events import AccountUpserted, Event, PaymentSettled
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.erp import fx
from finsync.runtime import clients, db
from finsync.runtime.messages import Outgoing
from finsync.runtime.serde import Serde, registry_client
from finsync.scenario.billing import malformed_invoices, tax_rates
from finsync.scenario.cash import payouts, plan_cash
from finsync.scenario.gateway import PaymentPlan, early_payments
from finsync.scenario.outcome import Outcome, dead_keys
from finsync.scenario.plan import UNREADABLE, Scenario
from finsync.settings import Settings

STALL = 90  # seconds without progress after which a stage is reported as stuck


def _publish(settings: Settings, serde: Serde, items: list[Event | Outgoing]) -> None:
    producer = clients.producer(settings, "finsync-simulate")
    messages = [i if isinstance(i, Outgoing) else serde.outgoing(i) for i in items]
    clients.send(producer, messages, timeout=60)


def _count(settings: Settings, sql: LiteralString, *params: object) -> int:
    with db.connect(settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def _arrived(
    settings: Settings, sql: LiteralString, ids: list[str], what: str
) -> Callable[[], tuple[bool, str]]:
    """A check for `_wait`: have all `ids` arrived, counted by `sql` (with `= ANY(%s)`)?"""

    def check() -> tuple[bool, str]:
        n = _count(settings, sql, ids)
        return n >= len(ids), f"{n}/{len(ids)} {what}"

    return check


def _wait(
    what: str,
    done: Callable[[], tuple[bool, str]],
    say: Callable[[str], None],
    timeout: float,
    outcome: Outcome,
) -> bool:
    """Wait until `done`; give up after `timeout`, or when nothing moved for STALL seconds."""
    started = moved = time.monotonic()
    last = ""
    while True:
        ok, progress = done()
        if progress != last:
            say(f"{what}: {progress}")
            last, moved = progress, time.monotonic()
        if ok:
            return True
        now = time.monotonic()
        if now - started > timeout or now - moved > STALL:
            outcome.waiting_for = f"{what} ({progress})"
            return False
        time.sleep(1.0)


def _dead_done(
    settings: Settings, s: Scenario, outcome: Outcome, services: list[str]
) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        got = {sv: dead_keys(settings, s, sv, outcome.started_ms) for sv in services}
        want = {sv: s.expected.dead.get(sv, {}) for sv in services}
        seen = sum(len(set(got[sv]) & set(want[sv])) for sv in services)
        total = sum(len(want[sv]) for sv in services)
        return seen == total, f"{seen}/{total} expected dead letters"

    return check


def load_sample_rates(settings: Settings, say: Callable[[str], None]) -> None:
    """The sample FX rates (deploy/fx-rates.sample.csv): some customers are billed in another
    currency than their legal entity's. Loading them again changes nothing."""
    with db.connect(settings) as conn:
        plan = fx.load_sample(conn)
        if plan is None or plan.refused:
            conn.rollback()
            return
        conn.commit()
    if plan.added or plan.changed:
        say(f"loaded {len(plan.added) + len(plan.changed)} sample FX rates")


def play(
    settings: Settings, s: Scenario, say: Callable[[str], None], timeout: float = 300
) -> Outcome:
    """Publish the scenario to the running services, stage by stage, waiting for each."""
    serde = Serde(registry_client(settings))
    load_sample_rates(settings, say)
    outcome = Outcome(s, started_ms=int(time.time() * 1000) - 1000)
    started = time.monotonic()
    try:
        _play(settings, s, serde, outcome, say, timeout)
    finally:
        outcome.elapsed = time.monotonic() - started
    return outcome


def _play(
    settings: Settings,
    s: Scenario,
    serde: Serde,
    outcome: Outcome,
    say: Callable[[str], None],
    timeout: float,
) -> None:
    accounts = len([e for e in s.crm if isinstance(e, AccountUpserted)])
    say(
        f"CRM publishes {accounts + len(s.late_accounts)} account events and "
        f"{len(s.opportunities)} closed-won opportunities (run tag {s.tag})"
    )
    _publish(settings, serde, s.crm)
    time.sleep(2)  # the late accounts' opportunities go round the retry topic meanwhile
    _publish(settings, serde, list(s.late_accounts))

    synced = _arrived(
        settings,
        "SELECT count(*) FROM finsync.account_xref WHERE account_id = ANY(%s)",
        sorted(s.expected.versions),
        "accounts synced",
    )
    if not _wait("CRM accounts", synced, say, timeout, outcome):
        return
    activated = _arrived(
        settings,
        "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = ANY(%s)",
        sorted(s.expected.activated),
        "subscriptions activated",
    )
    if not _wait("opportunities", activated, say, timeout, outcome):
        return
    crm_dead = _dead_done(settings, s, outcome, ["account-sync", "subscription-activator"])
    if not _wait("CRM dead letters", crm_dead, say, timeout, outcome):
        return

    rates = tax_rates(settings)
    early = early_payments(s, rates)
    say(f"the gateway settles {len(early)} card payments before their invoices reach the ERP")
    _publish(settings, serde, list(early))
    result = billing_jobs.run_invoices(settings, s.as_of)
    outcome.invoices = [i for i in result.invoices if s.owns(i.invoice_id)]
    say(f"billing's invoice run as of {s.as_of} issued {len(outcome.invoices)} invoices")
    posted = _arrived(
        settings,
        "SELECT count(*) FROM erp.ar_open_items WHERE invoice_id = ANY(%s)",
        [i.invoice_id for i in outcome.invoices],
        "invoices posted",
    )
    if not _wait("invoice postings", posted, say, timeout, outcome):
        return
    _publish(settings, serde, malformed_invoices(s, outcome.invoices[0]))
    billing_dead = _dead_done(settings, s, outcome, ["invoice-poster"])
    if not _wait("billing dead letters", billing_dead, say, timeout, outcome):
        return

    plan = PaymentPlan.make(s, outcome.invoices, {p.invoice_id for p in early}, rates)
    for invoice, line in plan.credits:
        outcome.credit_memos.append(
            billing_jobs.issue_credit_memo(
                settings, invoice.invoice_id, line, "service credit", s.as_of
            )
        )
    credited = _arrived(
        settings,
        "SELECT count(*) FROM erp.ar_credits WHERE credit_memo_id = ANY(%s)",
        [m.credit_memo_id for m in outcome.credit_memos],
        "credit memos posted",
    )
    say(f"billing issues {len(outcome.credit_memos)} credit memos")
    if not _wait("credit memo postings", credited, say, timeout, outcome):
        return

    payments = plan.payments(s, outcome.credit_memos)
    outcome.prepaid = plan.prepaid
    for p, error in plan.invalid:
        s.expected.dead_letter("payment-settler", p.payment_id, error)
    s.expected.dead_letter("payment-settler", f"PAY-{s.tag}-UNREADABLE", "UndecodableEvent")
    distinct = {p.payment_id: p for p in [*early, *payments]}
    s.expected.payments = set(distinct) - set(s.expected.dead.get("payment-settler", {}))
    outcome.payments = list(distinct.values())
    say(
        f"the gateway settles {len(payments)} more payment events (duplicates and malformed "
        "ones among them)"
    )
    unreadable = Outgoing(PaymentSettled.TOPIC, f"PAY-{s.tag}-UNREADABLE".encode(), UNREADABLE)
    _publish(settings, serde, [*payments, unreadable])
    applied = _arrived(
        settings,
        "SELECT count(*) FROM erp.payments WHERE payment_id = ANY(%s)",
        sorted(s.expected.payments),
        "payments applied",
    )
    if not _wait("cash application", applied, say, timeout, outcome):
        return
    pay_dead = _dead_done(settings, s, outcome, ["payment-settler"])
    if not _wait("payment dead letters", pay_dead, say, timeout, outcome):
        return
    if _play_cash(settings, s, serde, outcome, plan, say, timeout):
        outcome.complete = True


def _play_cash(
    settings: Settings,
    s: Scenario,
    serde: Serde,
    outcome: Outcome,
    plan: PaymentPlan,
    say: Callable[[str], None],
    timeout: float,
) -> bool:
    """Remittances, refunds and disputes on the cash settled; then the gateway's payouts."""
    cash = plan_cash(s, plan, outcome.payments, s.expected.payments)
    outcome.cash = cash
    for key, error in cash.invalid:
        s.expected.dead_letter("payment-settler", key, error)
    paying = [*cash.remittances, *([cash.stranger] if cash.stranger else [])]
    s.expected.payments |= {p.payment_id for p in paying}
    outcome.payments += paying
    say(
        f"the gateway settles {len(cash.remittances)} remittance(s) over several invoices and "
        f"{len(paying) - len(cash.remittances)} payment for another customer's invoice, "
        f"settles {len(cash.refunds)} refunds (one for more than the customer holds) and reports "
        f"{len({d.dispute_id for d in cash.disputes})} disputes (one outcome before its opening)"
    )
    _publish(settings, serde, list(cash.events))
    refunds = sorted({r.refund_id for r in cash.refunds} - {k for k, _ in cash.invalid})
    checks = [
        _arrived(
            settings,
            "SELECT count(*) FROM erp.payments WHERE payment_id = ANY(%s)",
            [p.payment_id for p in paying],
            "payments booked",
        ),
        _arrived(
            settings,
            "SELECT count(*) FROM erp.refunds WHERE refund_id = ANY(%s)",
            refunds,
            "refunds booked",
        ),
        _arrived(
            settings,
            "SELECT count(*) FROM erp.disputes WHERE dispute_id = ANY(%s) AND status <> 'OPENED'",
            sorted({d.dispute_id for d in cash.disputes}),
            "disputes decided",
        ),
    ]
    for what, check in zip(("remittances", "refunds", "disputes"), checks, strict=True):
        if not _wait(what, check, say, timeout, outcome):
            return False
    payouts(s, cash, s.as_of)
    say(
        f"the gateway pays out {len(cash.payouts)} times to the bank, one legal entity and "
        f"currency each; payout {cash.mismatched} reports a payment 1.00 short"
    )
    _publish(settings, serde, list(cash.payouts))
    paid = _arrived(
        settings,
        "SELECT count(*) FROM erp.payouts WHERE payout_id = ANY(%s)",
        [o.payout_id for o in cash.payouts],
        "payouts booked",
    )
    if not _wait("payouts", paid, say, timeout, outcome):
        return False
    cash_dead = _dead_done(settings, s, outcome, ["payment-settler"])
    return _wait("cash dead letters", cash_dead, say, timeout, outcome)
