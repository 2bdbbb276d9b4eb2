"""The whole flow, all four services as processes on the real stack: CRM account to applied cash.

One realistic scenario (`finsync simulate`) is played once for the module; the tests then read
the systems of record, the outbound topics and the dead-letter topics. The last test removes
the cause of every dead letter, replays them all — twice — and checks the books again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest

from finsync.books.clearing import in_transit
from finsync.books.reconcile import reconcile
from finsync.contract.topics import SERVICES
from finsync.ops import replay
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


def _replay(settings: Settings, letters: list[dlq.DeadLetter], force: bool = False) -> list[str]:
    """Replay letters read from their topics, through the dead-letter index; their outcomes."""

    def indexed() -> list[int]:
        with db.connect(settings) as conn:
            rows = conn.execute(
                "SELECT d.id FROM finsync.dead_letters d JOIN unnest(%s::text[], %s::int[], "
                "%s::bigint[]) AS x(t, p, o) ON (d.dlq_topic, d.dlq_partition, d.dlq_offset) "
                "= (x.t, x.p, x.o)",
                ([x.record.topic for x in letters], [x.record.partition for x in letters],
                 [x.record.offset for x in letters]),
            ).fetchall()  # fmt: skip
        return [r[0] for r in rows] if len(rows) == len(letters) else []

    ids = eventually(indexed, 30, "the dead letters in the index") if letters else []
    done = replay.replay(settings, ids=ids, reason="e2e", actor="e2e", rate_per_second=500,
                         force=force) if ids else None  # fmt: skip
    return [r.outcome for r in done.results] if done else []


def test_replaying_every_dead_letter_after_its_cause_is_removed_keeps_the_books_right(
    settings: Settings, serde: Serde, run: Outcome
) -> None:
    s, like = run.scenario, run.scenario.like()
    before = {sv: _letters(settings, sv, run) for sv in SERVICES}
    waiting = {sv: {k for k, e in s.expected.dead.get(sv, {}).items() if e == "DependencyNotReady"}
               for sv in SERVICES}  # fmt: skip
    assert all(waiting[sv] for sv in ("account-sync", "subscription-activator"))
    assert not waiting["payment-settler"]  # prepayments are booked at once, not dead letters

    # Causes removed: the orphan's parent arrives; billing runs next period's invoices.
    publish(settings, serde, [s.orphan_parent])
    eventually(
        lambda: _scalar(settings, "SELECT 1 FROM finsync.account_xref WHERE account_id = %s",
                        s.orphan_parent.account_id),
        60, "the orphan's parent to sync",
    )  # fmt: skip

    def replay_and_wait(service: str, table: str, column: str) -> None:
        assert all(outcome == "replayed" for outcome in _replay(settings, before[service]))
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
    # The prepayments for them were earmarked when they settled: applied as the invoices posted.
    prepaid = [i for i, _ in run.prepaid]
    eventually(
        lambda: _scalar(settings, "SELECT count(*) FROM erp.payment_applications "
                        "WHERE kind = 'EARMARKED' AND invoice_id = ANY(%s)", prepaid)
        == len(prepaid),
        90, "the prepayments to be applied",
    )  # fmt: skip
    # Billing's and the gateway's bad ones: nothing to fix, each dies again.
    _replay(settings, before["invoice-poster"])
    _replay(settings, before["payment-settler"])

    # Replaying everything a second time changes nothing.
    keys = _column(
        settings,
        "SELECT idempotency_key FROM erp.journal_entries WHERE idempotency_key LIKE %s",
        like,
    )
    with db.connect(settings) as conn:
        entries = reports.postings_by_key(conn, [str(k) for k in keys])
    for service in SERVICES:  # forced: the resolved and the loop guard's are sent too
        _replay(settings, before[service], force=True)
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


def test_the_gateways_cash_is_booked_and_clearing_ties_to_what_is_in_transit(
    settings: Settings, run: Outcome
) -> None:
    """Remittances, a stranger's invoice, refunds, disputes won and lost, payouts (one planted
    with a wrong item) and foreign-currency customers, as the scenario's gateway sent them."""
    cash = run.cash
    assert cash is not None and cash.remittances and cash.stranger and cash.mismatched
    like = run.scenario.like()
    remittance = cash.remittances[0]
    assert remittance.allocations
    with db.connect(settings) as conn:
        applied = conn.execute(
            "SELECT invoice_id, applied_amount FROM erp.payment_applications "
            "WHERE payment_id = %s AND kind = 'SETTLEMENT' ORDER BY 1",
            (remittance.payment_id,),
        ).fetchall()
        left = _row(
            conn,
            "SELECT p.unapplied_open + COALESCE(sum(a.applied_amount), 0), p.cash_account "
            "FROM erp.payments p LEFT JOIN erp.payment_applications a ON a.payment_id = "
            "p.payment_id AND a.kind = 'AUTO' WHERE p.payment_id = %s GROUP BY p.payment_id",
            remittance.payment_id,
        )
        review = _row(conn, "SELECT review_reason, applied_amount FROM erp.payments "
                      "WHERE payment_id = %s", cash.stranger.payment_id)  # fmt: skip
        refunds = _row(conn, "SELECT count(*) FROM erp.refunds WHERE refund_id LIKE %s", like)
        disputes = conn.execute(
            "SELECT status, count(*) FROM erp.disputes WHERE dispute_id LIKE %s GROUP BY 1 "
            "ORDER BY 1",
            (like,),
        ).fetchall()
        payouts = conn.execute(
            "SELECT payout_id, status FROM erp.payouts WHERE payout_id LIKE %s ORDER BY 1", (like,)
        ).fetchall()
        transit = in_transit(conn)
        foreign = _row(
            conn,
            "SELECT count(l.rate), count(*) FILTER (WHERE l.rate <> 1 AND l.functional_debit + "
            "l.functional_credit > 0), count(*) FILTER (WHERE l.rate IS NULL AND "
            "l.account_code IN ('7100', '7200')) "
            "FROM erp.journal_lines l JOIN erp.journal_entries e "
            "USING (entry_id) WHERE e.legal_entity = 'ACME-UK' AND e.currency = 'EUR' "
            "AND e.idempotency_key LIKE %s",
            like,
        )
    # The remittance paid each invoice it named; what was over stayed unapplied on the payer
    # (until the auto-apply policy used it on a later invoice of theirs).
    assert applied == sorted((a.invoice_id, a.amount) for a in remittance.allocations)
    over = remittance.amount - sum(a.amount for a in remittance.allocations)
    assert left == (over, "1000")  # a wire reaches the bank at once
    # Another customer's invoice is never paid by a stranger: held for review, nothing applied.
    assert review[0] and review[1] == 0
    assert refunds == (len(cash.refunds) - 1,)  # all but the one for more than the payer holds
    assert disputes == [("LOST", 1), ("WON", 1)]
    assert payouts == sorted(
        (o.payout_id, "MISMATCH" if o.payout_id == cash.mismatched else "MATCHED")
        for o in cash.payouts
    )
    # Gateway clearing holds exactly what has not been paid out yet, for every entity.
    assert transit and all(documents == gl for documents, gl in transit.values())
    # The UK entity's euro customers are booked in sterling too, at the loaded rate; their
    # payments, at later rates than their invoices', realise FX (lines with no euro amount).
    assert foreign[0] > 0 and foreign[0] == foreign[1] and foreign[2] > 0
    # The run's books reconcile, but for the planted payout, which reconcile names. (Breaks
    # of other tests' documents on the shared database are theirs.)
    since = datetime.fromtimestamp(run.started_ms / 1000, UTC)
    report = reconcile(settings, since=since)
    owns = run.scenario.owns
    ours = [f for f in report.breaks if owns(f.scope) or any(owns(d) for d in f.documents)]
    assert [(f.check, f.scope) for f in ours] == [("payouts", f"payout {cash.mismatched}")]
    assert all(debits == credits for _, _, debits, credits in report.functional_totals)


def _row(conn: psycopg.Connection, sql: str, *params: object) -> tuple[object, ...]:
    row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return tuple(row)
