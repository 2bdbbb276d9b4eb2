"""The whole flow, all four services as processes on the real stack: CRM account to applied cash.

One realistic scenario (`finsync simulate`) is played once for the module; the tests then read
the systems of record, the outbound topics and the dead-letter topics. The last test removes
the cause of every dead letter, replays them all — twice — and checks the books again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest

from finsync.contract.topics import SERVICES
from finsync.reference import reports
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import clients, db, dlq
from finsync.runtime.serde import Serde
from finsync.scenario import crm, stages
from finsync.scenario.outcome import Outcome, dead_letter_differences, dead_letters
from finsync.scenario.processes import ServiceProcess
from finsync.settings import Settings
from tests.support import eventually, publish

pytestmark = pytest.mark.e2e

# Retries that end soon enough for a test, long enough for an early payment to find its invoice.
ENV = {"FINSYNC_RETRY_BASE_SECONDS": "0.5", "FINSYNC_RETRY_BUDGET_SECONDS": "15"}


@pytest.fixture(scope="module")
def services(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("order-to-cash")
    running = [ServiceProcess(name, logs, ENV).start(wait=False) for name in SERVICES]
    try:
        for service in running:
            service.wait_log("started", 90)
        yield
    finally:
        for service in running:
            tail = "\n".join(service.log.read_text().splitlines()[-10:])
            print(f"--- {service.log} ---\n{tail}")
            service.stop()


@pytest.fixture(scope="module")
def run(settings: Settings, services: None) -> Outcome:
    scenario = crm.build(seed=11, tag=None, as_of=date.today(), accounts=80)
    outcome = stages.play(settings, scenario, print, timeout=240)
    assert outcome.complete, f"the scenario did not complete: {outcome.waiting_for}"
    return outcome


def _scalar(settings: Settings, sql: str, *params: object) -> object:
    with db.connect(settings) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _column(settings: Settings, sql: str, *params: object) -> list[object]:
    with db.connect(settings) as conn:
        return [r[0] for r in conn.execute(sql, params).fetchall()]


def test_every_event_takes_effect_once_or_is_an_expected_dead_letter(
    settings: Settings, run: Outcome
) -> None:
    s, like = run.scenario, run.scenario.like()
    with db.connect(settings) as conn:
        versions = dict(
            conn.execute(
                "SELECT account_id, version FROM finsync.account_xref WHERE account_id LIKE %s",
                (like,),
            ).fetchall()
        )
        subscriptions = Counter(
            r[0]
            for r in conn.execute(
                "SELECT opportunity_id FROM billing.subscriptions WHERE opportunity_id LIKE %s",
                (like,),
            )
        )
        keys = [f"invoice:{i.invoice_id}" for i in run.invoices]
        keys += [f"credit-memo:{m.credit_memo_id}" for m in run.credit_memos]
        postings = reports.postings_by_key(conn, keys)
        applied = {
            r[0]
            for r in conn.execute(
                "SELECT payment_id FROM erp.payments WHERE payment_id LIKE %s", (like,)
            )
        }
    assert versions == s.expected.versions  # every account, at its newest version
    assert subscriptions == Counter(s.expected.activated)  # each opportunity once
    assert postings == dict.fromkeys(keys, 1)  # each invoice and credit memo once
    assert applied == s.expected.payments  # each valid payment once, no invalid one
    assert dead_letter_differences(settings, s, run.started_ms) == ([], [])


def test_duplicate_accounts_share_one_customer_and_billing_account(
    settings: Settings, run: Outcome
) -> None:
    s = run.scenario
    with db.connect(settings) as conn:
        customers = reports.customer_of(conn, s.like())
    # On a database earlier runs have used, a name may match a customer one of them left; then
    # both of a pair are linked to that customer, not to each other.
    earlier = {a for a, (_, m) in customers.items() if m is not None and not s.owns(m)}
    for duplicate, original in s.expected.linked.items():
        assert customers[duplicate][0] == customers[original][0]
        if original in earlier:
            continue
        # Whichever arrived second is the one linked, and the link names the other.
        linked = {a for a in (duplicate, original) if customers[a][1] is not None}
        assert len(linked) == 1
        (one,) = linked
        assert customers[one][1] == ({duplicate, original} - {one}).pop()
    pairs = {frozenset((d, o)) for d, o in s.expected.linked.items() if o not in earlier}
    within_run = {frozenset((a, m)) for a, (_, m) in customers.items() if m and s.owns(m)}
    assert within_run == pairs


def test_the_books_balance_and_receivables_reconcile(settings: Settings, run: Outcome) -> None:
    like = run.scenario.like()
    with db.connect(settings) as conn:
        assert reports.unbalanced_entries(conn) == 0
        assert reports.duplicate_effects(conn, like) == []
        # AR per invoice = invoiced - credit memos - applied cash - write-offs.
        assert reports.ar_discrepancies(conn, like) == []
        # The ERP booked what billing invoiced.
        assert conn.execute(
            "SELECT count(*) FROM billing.invoices b JOIN erp.ar_open_items a "
            "USING (invoice_id) WHERE b.invoice_id LIKE %s AND b.total <> a.original_amount",
            (like,),
        ).fetchone() == (0,)
        # The general ledger agrees with the AR sub-ledger: net AR of the run's journals is the
        # sum of its open items, per legal entity and currency.
        ledger, items = reports.ar_ledger_and_items(conn, like)
        assert ledger == items
        trails = reports.opportunity_trails(conn, sorted(run.scenario.expected.activated))
    assert trails and all(t.posted > 0 and t.posted == t.invoices for t in trails)


def _trace_ids(settings: Settings, topic: str, run: Outcome) -> dict[str, str]:
    """Business key -> trace id of this run's records on a topic."""
    out = {}
    for record in clients.read(settings, topic, run.started_ms):
        parent = record.header_text("traceparent")
        if run.scenario.owns(record.key_text) and parent:
            out[record.key_text or ""] = parent.split("-")[1]
    return out


def test_one_trace_follows_a_deal_from_subscription_to_invoice_posting(
    settings: Settings, run: Outcome
) -> None:
    activated = _trace_ids(settings, "billing.subscription-activated", run)
    issued = _trace_ids(settings, "billing.invoice-issued", run)
    posted = _trace_ids(settings, "erp.invoice-posted", run)
    assert issued and set(issued) <= set(posted)
    for invoice in run.invoices:
        subscription = invoice.subscription_id or ""
        assert issued[invoice.invoice_id] == activated[subscription] == posted[invoice.invoice_id]


def _letters(settings: Settings, service: str, run: Outcome) -> list[dlq.DeadLetter]:
    return dead_letters(settings, run.scenario, run.started_ms, [service])


def test_replaying_every_dead_letter_after_its_cause_is_removed_keeps_the_books_right(
    settings: Settings, serde: Serde, run: Outcome
) -> None:
    s, like = run.scenario, run.scenario.like()
    before = {sv: _letters(settings, sv, run) for sv in SERVICES}
    waiting = {sv: {k for k, e in s.expected.dead.get(sv, {}).items() if e == "DependencyNotReady"}
               for sv in SERVICES}  # fmt: skip
    assert all(waiting[sv] for sv in ("account-sync", "subscription-activator", "payment-settler"))

    # Causes removed: the orphan's parent arrives; billing runs next period's invoices.
    publish(settings, serde, [s.orphan_parent])
    eventually(
        lambda: _scalar(settings, "SELECT 1 FROM finsync.account_xref WHERE account_id = %s",
                        s.orphan_parent.account_id),
        60, "the orphan's parent to sync",
    )  # fmt: skip

    def replay_and_wait(service: str, table: str, column: str) -> None:
        results = dlq.replay(settings, before[service], by="e2e", rate_per_second=500)
        assert all(r.outcome == "replayed" for r in results)
        eventually(
            lambda: set(
                _column(settings, f"SELECT {column} FROM {table} WHERE {column} = ANY(%s)",
                        sorted(waiting[service]))
            ) == waiting[service],
            90, f"{service}'s replayed dead letters to take effect",
        )  # fmt: skip

    replay_and_wait("account-sync", "finsync.account_xref", "account_id")
    replay_and_wait("subscription-activator", "billing.subscriptions", "opportunity_id")
    later = max(d for _, d in run.prepaid)
    issued = billing_jobs.run_invoices(settings, later).invoices
    new_ids = [i.invoice_id for i in issued if s.owns(i.invoice_id)]
    assert {i for i, _ in run.prepaid} <= set(new_ids)
    eventually(
        lambda: _scalar(settings, "SELECT count(*) FROM erp.ar_open_items "
                        "WHERE invoice_id = ANY(%s)", new_ids) == len(new_ids),
        90, "next period's invoices to post",
    )  # fmt: skip
    replay_and_wait("payment-settler", "erp.payments", "payment_id")
    dlq.replay(settings, before["invoice-poster"], by="e2e")  # billing's bad ones: nothing to fix

    # Replaying everything a second time changes nothing.
    keys = _column(
        settings,
        "SELECT idempotency_key FROM erp.journal_entries WHERE idempotency_key LIKE %s",
        like,
    )
    with db.connect(settings) as conn:
        entries = reports.postings_by_key(conn, [str(k) for k in keys])
    for service in SERVICES:
        dlq.replay(settings, before[service], by="e2e", rate_per_second=500)
    permanent = {
        sv: [x for x in before[sv] if x.record.key_text not in waiting[sv]] for sv in SERVICES
    }

    def dead_again() -> bool:
        # Every permanent dead letter is dead again after each of the two replays.
        for sv in SERVICES:
            counts = Counter(x.record.key_text for x in _letters(settings, sv, run))
            if any(counts[x.record.key_text] < 3 for x in permanent[sv]):
                return False
        return True

    eventually(dead_again, 120, "the second replay to be processed")
    time.sleep(3)  # and a little more, for anything that would wrongly take effect again
    with db.connect(settings) as conn:
        assert reports.postings_by_key(conn, list(entries)) == entries
        assert reports.duplicate_effects(conn, like) == []
        assert reports.unbalanced_entries(conn) == 0
        assert reports.ar_discrepancies(conn, like) == []
    for sv in SERVICES:  # what was waiting never dies again
        counts = Counter(x.record.key_text for x in _letters(settings, sv, run))
        assert all(counts[k] == 1 for k in waiting[sv])
    applied = set(
        _column(settings, "SELECT payment_id FROM erp.payments WHERE payment_id LIKE %s", like)
    )
    assert applied == s.expected.payments | waiting["payment-settler"]
