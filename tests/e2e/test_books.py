"""Fourteen months of books on the real stack: order to cash with a period close every month.

The four services run as processes on a database of their own (the stack's scratch database,
reset first). Four legal entities sell monthly, quarterly, annual and one-time lines, some
starting mid-month; ACME-JP rounds tax once per rate per invoice. Every month billing runs,
the invoices post, customers pay (a yen payment short within tolerance), credit memos arrive a
month after their invoice (one on a paid invoice: held as customer credit, which the next
month's invoice uses), revenue is recognised through the month's end, each entity closes
the month, and `finsync reconcile` must find nothing. The last test plants one break of each
kind in the database and sees each reported by name. The books post under the example GL
mapping (deploy/gl-mapping.example.toml): analytics to 4010 and 2310, yen consumption tax to
2210, German VAT to 2220, the rest to the default accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.bench.invoice_poster import bench_settings, reset_database
from finsync.contract.topics import SERVICES
from finsync.domain.billing_schedule import add_months
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.scenario.processes import ServiceProcess
from finsync.settings import Settings
from tests.e2e.books_breaks import plant, reconcile_json
from tests.e2e.books_story import (
    CREDITS,
    ENTITIES,
    FIRST,
    MONTHS,
    PAID_CREDITS,
    Books,
    load_gl_mapping,
    open_accounts,
    play_month,
    scalar,
    skip_to_end,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def books(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    scratch = bench_settings(settings)
    reset_database(scratch)
    load_gl_mapping(scratch)
    skip_to_end(settings)
    logs = tmp_path_factory.mktemp("books")
    env = {
        "FINSYNC_DATABASE_URL": scratch.database_url,
        "FINSYNC_RETRY_BASE_SECONDS": "0.3",
        "FINSYNC_RETRY_BUDGET_SECONDS": "60",
    }
    running = [ServiceProcess(name, logs, env).start(wait=False) for name in SERVICES]
    try:
        for service in running:
            service.wait_log("consuming ", 90)
        yield Books(scratch, uuid.uuid4().hex[:6], datetime.now(UTC))
    finally:
        for service in running:
            tail = "\n".join(service.log.read_text().splitlines()[-10:])
            print(f"--- {service.log} ---\n{tail}")
            service.stop()


@pytest.fixture(scope="module")
def played(books: Books, serde: Serde) -> Books:
    open_accounts(books, serde)
    for k in range(MONTHS):
        play_month(books, serde, add_months(FIRST, k))
    return books


def test_every_month_closes_and_reconciles_with_no_break(played: Books) -> None:
    assert len(played.closes) == MONTHS * len(ENTITIES)
    assert len(played.reports) == MONTHS
    assert all(r["ok"] for r in played.reports)
    assert len(played.credit_memos) == len(CREDITS) + len(PAID_CREDITS)


def test_revenue_is_released_month_by_month_and_deferred_revenue_runs_out(played: Books) -> None:
    # The US monthly seat line, 100 a month from January: 1,200 recognised, none deferred.
    inv = [billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-US", add_months(FIRST, k))
           for k in range(12)]  # fmt: skip
    released = scalar(
        played,
        "SELECT sum(amount - cancelled_amount) FROM erp.revenue_schedules "
        "WHERE invoice_id = ANY(%s) AND line_id = '1' AND recognized_entry_id IS NOT NULL",
        inv,
    )
    assert released == Decimal("1200.00")
    # The annual line from 2026-01-02: by 2027-02-28 the year is over, and all of it released.
    annual = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-US", date(2026, 1, 2))
    rows = scalar(
        played,
        "SELECT array_agg(amount ORDER BY period) FROM erp.revenue_schedules "
        "WHERE invoice_id = %s AND recognized_entry_id IS NULL AND amount > cancelled_amount",
        annual,
    )
    assert rows is None
    # UK's annual line from 2026-03-10 still has 9 days of March 2027 to release.
    uk = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-UK", date(2026, 3, 10))
    left = scalar(
        played,
        "SELECT sum(amount - cancelled_amount) FROM erp.revenue_schedules "
        "WHERE invoice_id = %s AND recognized_entry_id IS NULL",
        uk,
    )
    assert left == Decimal("59.18")  # 2,400 x 9 / 365, the schedule's last month


def test_yen_invoices_are_taxed_once_per_rate_per_invoice(played: Books) -> None:
    taxes = scalar(
        played,
        "SELECT array_agg(DISTINCT tax_total) FROM billing.invoices WHERE legal_entity = 'ACME-JP'",
    )
    assert taxes == [Decimal(402)]  # ¥4,020 at 10 %, not 4 x ¥101 = ¥404


def test_each_entitys_invoice_numbers_run_without_gaps_in_date_order(played: Books) -> None:
    with db.connect(played.settings) as conn:
        rows = conn.execute(
            "SELECT legal_entity, invoice_number FROM billing.invoices "
            "ORDER BY legal_entity, issued_on, invoice_number"
        ).fetchall()
    for entity in ENTITIES:
        numbers = [n for e, n in rows if e == entity]
        by_year: dict[str, list[int]] = {}
        for number in numbers:
            _, year, seq = number.rsplit("-", 2)
            by_year.setdefault(year, []).append(int(seq))
        for seqs in by_year.values():
            assert seqs == list(range(1, len(seqs) + 1)), (entity, seqs)


def test_a_memo_on_a_paid_invoice_is_held_as_credit_and_the_next_invoice_uses_it(
    played: Books,
) -> None:
    [memo] = played.paid_credits  # ¥1,005 and the ¥101 of the invoice's ¥402 it was given
    june = billing_jobs.invoice_id(f"OPP-{played.tag}-ACME-JP", date(2026, 6, 1))
    with db.connect(played.settings) as conn:
        credits = conn.execute(
            "SELECT kind, document_id, amount FROM erp.customer_credits WHERE account_id = %s "
            "ORDER BY kind",
            (memo.account_id,),
        ).fetchall()
        moved = conn.execute(
            "SELECT e.idempotency_key, sum(l.credit - l.debit) FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) WHERE l.account_code = '2400' "
            "AND e.legal_entity = 'ACME-JP' GROUP BY 1 ORDER BY 1",
        ).fetchall()
        total, settled, left = conn.execute(
            "SELECT a.original_amount, p.applied_amount + p.written_off_amount, a.open_amount "
            "FROM erp.ar_open_items a JOIN erp.payments p USING (invoice_id) "
            "WHERE a.invoice_id = %s",
            (june,),
        ).fetchone()
    assert memo.total == Decimal(1106)
    assert credits == [
        ("CREATED", memo.credit_memo_id, Decimal(1106)),
        ("USED", june, Decimal(-1106)),
    ]
    assert moved == [
        (f"credit-application:{june}", Decimal(-1106)),  # debits 2400, credits AR
        (f"credit-memo:{memo.credit_memo_id}", Decimal(1106)),
    ]
    # June's ¥4,422 less the ¥1,106 of credit: ¥3,316 owed, paid ¥3 short and written off.
    assert (total, settled, left) == (Decimal(4422), Decimal(3316), Decimal(0))


def test_lines_post_to_the_accounts_the_gl_mapping_names(played: Books) -> None:
    with db.connect(played.settings) as conn:
        ruled = conn.execute(
            "SELECT DISTINCT e.legal_entity, l.account_code, l.mapping_rule "
            "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
            "WHERE l.mapping_rule IS NOT NULL ORDER BY 1, 2"
        ).fetchall()
        balances = dict(
            conn.execute(
                "SELECT e.legal_entity || ' ' || l.account_code, sum(l.credit - l.debit) "
                "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
                "WHERE l.account_code IN ('2200', '2210', '2310', '4010') GROUP BY 1"
            ).fetchall()
        )
    # The rules name the lines that chose by them: a deferred analytics line, a taxed yen or
    # German line (an invoice's, or a credit memo's taking it back).
    assert ruled == [
        ("ACME-DE", "2220", "de-vat-19"),
        ("ACME-JP", "2210", "jp-consumption-10"),
        ("ACME-UK", "2310", "analytics"),
        ("ACME-US", "2310", "analytics"),
    ]
    assert balances == {
        "ACME-JP 2210": Decimal(4622),  # 12 invoices x ¥402, less two memos' ¥101
        "ACME-UK 2200": Decimal("480.00"),  # 20 % of the year's 2,400: no rule for UK tax
        "ACME-UK 2310": Decimal("59.18"),  # the 9 days of March 2027 still deferred
        "ACME-UK 4010": Decimal("2340.82"),
        "ACME-US 2200": Decimal("210.25"),  # 7.25 % of 12 x 100, 1,200 and 500
        "ACME-US 2310": Decimal("0.00"),  # the year from 2026-01-02 all released
        "ACME-US 4010": Decimal("1200.00"),
    }


def test_reconcile_reports_each_planted_break_by_its_documents(played: Books, serde: Serde) -> None:
    clean = reconcile_json(played)
    assert clean["exit"] == 0 and clean["breaks"] == [], clean["breaks"]
    planted = plant(played, serde)
    report = reconcile_json(played)
    assert report["exit"] == 1
    found: dict[str, list[str]] = {}
    for b in report["breaks"]:  # type: ignore[attr-defined]
        found.setdefault(b["check"], []).append(b["scope"])
    assert found == planted
