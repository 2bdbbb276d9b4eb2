"""GL mapping on the real stack: a mapping loaded with `finsync erp mapping load` chooses the
accounts invoice-poster posts billing's invoices to, every journal line names its rule, a credit
memo and a recognition run keep to the accounts the line used, and the ledger reconciles.

The test books under a legal entity and SKUs of its own, so no other test's postings match its
rules; it ends by loading a mapping without them, which retires the rules postings used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.books import ledger
from finsync.contract.events import BillingPeriod, InvoicePosted
from finsync.ports.billing import BillingAccount, NewSubscription, Phase
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp import recognition
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, journals

pytestmark = pytest.mark.integration

D = Decimal
ACCOUNTS = """
[[account]]
code = "4091"
name = "Revenue — mapping test, analytics"
kind = "REVENUE"

[[account]]
code = "2391"
name = "Deferred revenue — mapping test, analytics"
kind = "LIABILITY"

[[account]]
code = "4092"
name = "Revenue — mapping test, platform"
kind = "REVENUE"

[[account]]
code = "2392"
name = "Deferred revenue — mapping test, platform"
kind = "LIABILITY"

[[account]]
code = "2291"
name = "Consumption tax payable — mapping test"
kind = "LIABILITY"
"""


def mapping_file(tag: str, entity: str) -> str:
    return (
        ACCOUNTS
        + f"""
[[revenue]]
id = "{tag}-analytics"
sku = "{tag}-ANALYTICS"
revenue_account = "4091"
deferred_account = "2391"

[[revenue]]
id = "{tag}-platform"
sku = "{tag}-PLAT-*"
revenue_account = "4092"
deferred_account = "2392"

[[tax]]
id = "{tag}-consumption-10"
legal_entity = "{entity}"
rate = 0.10
tax_account = "2291"

[[tax]]
id = "{tag}-consumption-8"
legal_entity = "{entity}"
rate = "0.08"
tax_account = "2291"
"""
    )


def finsync(*args: str) -> subprocess.CompletedProcess[str]:
    wide = {**os.environ, "COLUMNS": "250"}  # the listing's table on one line per rule
    return subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", *args], capture_output=True, text=True, env=wide
    )


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def _subscribe(settings: Settings, tag: str, entity: str) -> str:
    """A yen deal from 2026-01-01: analytics for a year (its own rule), a platform seat monthly
    (its family's rule) and onboarding once (no rule: the defaults)."""
    opportunity = f"OPP-{tag}"
    start, end = date(2026, 1, 1), date(2026, 12, 31)
    with db.connect(settings) as conn:
        conn.execute(
            "INSERT INTO billing.legal_entities (legal_entity, name, tax_rate, "
            "payment_terms_days) VALUES (%s, 'Mapping test KK', 0.10, 30)",
            (entity,),
        )
        billing = ReferenceBilling(conn)
        account = billing.create_account(
            BillingAccount(f"ACC-{tag}", f"{tag} KK", "JP", "JPY", entity, None, None)
        )
        billing.create_subscription(
            NewSubscription(
                opportunity_id=opportunity, account_id=f"ACC-{tag}", billing_account_id=account,
                legal_entity=entity, currency="JPY", correlation_id=f"o2c-{tag}",
                phases=(
                    Phase("1", f"{tag}-ANALYTICS", "Analytics", D(1), D(120000),
                          BillingPeriod.ANNUAL, start, end),
                    Phase("2", f"{tag}-PLAT-SEAT", "Platform seat", D(1), D(10000),
                          BillingPeriod.MONTHLY, start, end),
                    Phase("3", f"{tag}-ONBOARDING", "Onboarding", D(1), D(50000),
                          BillingPeriod.ONE_TIME, start, start),
                ),
            )
        )  # fmt: skip
        conn.commit()
    return opportunity


def _lines(settings: Settings, key: str) -> list[tuple[str, Decimal, Decimal, str | None]]:
    """(account, debit, credit, rule) of the journal under an idempotency key."""
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT l.account_code, l.debit, l.credit, l.mapping_rule FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) WHERE e.idempotency_key = %s "
            "ORDER BY l.line_no",
            (key,),
        ).fetchall()
    return [(a, D(d), D(c), r) for a, d, c, r in rows]


def _post_billing(settings: Settings, as_of: date, invoice: str) -> None:
    billing_jobs.run_invoices(settings, as_of)
    eventually(lambda: journals(settings, f"invoice:{invoice}") == 1, 60, f"invoice {invoice}")


def test_a_loaded_mapping_chooses_the_accounts_and_every_posting_names_its_rule(
    settings: Settings, serde: Serde, poster: ServiceProcess, tmp_path: Path
) -> None:
    tag = f"M{uuid.uuid4().hex[:6].upper()}"
    entity = f"MAP-{tag}"
    file = tmp_path / "mapping.toml"

    # A file naming an account the chart does not have is refused whole.
    file.write_text(
        mapping_file(tag, entity).replace('tax_account = "2291"', 'tax_account = "2299"')
    )
    refused = finsync("erp", "mapping", "load", str(file))
    assert refused.returncode == 1, refused.stdout
    assert f"rule '{tag}-consumption-10': tax account 2299 is not in the chart" in refused.stdout
    assert tag not in finsync("erp", "mapping", "list").stdout

    file.write_text(mapping_file(tag, entity))
    loaded = finsync("erp", "mapping", "load", str(file))
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "4 rule(s) added" in loaded.stdout
    assert f"rule {tag}-platform added: family {tag}-PLAT-* -> revenue 4092, deferred 2392" in (
        loaded.stdout
    )
    again = finsync("erp", "mapping", "load", str(file))
    assert "0 rule(s) added, 0 changed, 0 retired, 0 deleted, 4 unchanged" in again.stdout

    opportunity = _subscribe(settings, tag, entity)
    january = billing_jobs.invoice_id(opportunity, date(2026, 1, 1))
    tail = TopicTail(settings, InvoicePosted.TOPIC)
    _post_billing(settings, date(2026, 1, 31), january)
    analytics, platform = f"{tag}-analytics", f"{tag}-platform"
    ten = f"{tag}-consumption-10"
    assert _lines(settings, f"invoice:{january}") == [
        ("1200", D(198000), D(0), None),
        ("2391", D(0), D(120000), analytics),  # its own rule, deferred for the year
        ("2392", D(0), D(10000), platform),  # its family's rule, deferred for January
        ("4000", D(0), D(50000), None),  # no rule: revenue at once, on the default
        ("2291", D(0), D(18000), ten),  # the entity's 10 % on the mapped tax account
    ]
    with db.connect(settings) as conn:
        kept = conn.execute(
            "SELECT line_id, revenue_account, deferred_account, mapping_rule, tax_account, "
            "tax_rule FROM erp.ar_invoice_lines WHERE invoice_id = %s ORDER BY line_id",
            (january,),
        ).fetchall()
    assert kept == [
        ("1", "4091", "2391", analytics, "2291", ten),
        ("2", "4092", "2392", platform, "2291", ten),
        ("3", "4000", "2300", None, "2291", ten),
    ]
    # The published posting names each line's rule too.
    records = eventually(
        lambda: [r for r in tail.poll(0.5) if r.key_text == january], 30, "erp.invoice-posted"
    )
    tail.close()
    event = serde.decode(InvoicePosted.TOPIC, records[0].value)
    assert isinstance(event, InvoicePosted)
    assert [(x.account_code, x.mapping_rule) for x in event.journal_lines] == [
        ("1200", None),
        ("2391", analytics),
        ("2392", platform),
        ("4000", None),
        ("2291", ten),
    ]

    # January released, then the analytics line credited in full in February: what was
    # recognised comes back from 4091, the rest from 2391, its tax from 2291.
    recognition.recognize(settings, date(2026, 1, 31), entity)
    assert _lines(settings, f"recognition:{entity}:JPY:2026-01") == [
        ("2391", D(10192), D(0), None),
        ("4091", D(0), D(10192), None),
        ("2392", D(10000), D(0), None),
        ("4092", D(0), D(10000), None),
    ]
    february = billing_jobs.invoice_id(opportunity, date(2026, 2, 1))
    _post_billing(settings, date(2026, 2, 28), february)
    memo = billing_jobs.issue_credit_memo(settings, january, "1", "mapping test", date(2026, 2, 10))
    key = f"credit-memo:{memo.credit_memo_id}"
    eventually(lambda: journals(settings, key) == 1, 60, "the credit memo")
    assert _lines(settings, key) == [
        ("4091", D(10192), D(0), analytics),
        ("2391", D(109808), D(0), analytics),
        ("2291", D(12000), D(0), ten),
        ("1200", D(0), D(132000), None),
    ]
    recognition.recognize(settings, date(2026, 2, 28), entity)
    assert _lines(settings, f"recognition:{entity}:JPY:2026-02") == [
        ("2392", D(10000), D(0), None),
        ("4092", D(0), D(10000), None),
    ]

    with db.connect(settings) as conn:
        assert ledger.run(conn, entity, None) == []
        balances = dict(
            conn.execute(
                "SELECT l.account_code, sum(l.credit - l.debit) FROM erp.journal_lines l "
                "JOIN erp.journal_entries e USING (entry_id) WHERE e.legal_entity = %s "
                "GROUP BY 1",
                (entity,),
            ).fetchall()
        )
    assert balances == {
        "1200": D(-77000),  # January's 198,000 less the memo's 132,000, and February's 11,000
        "2291": D(7000),  # 18,000 + 1,000 - 12,000
        "2391": D(0),
        "2392": D(0),  # both seat months released
        "4000": D(50000),
        "4091": D(0),
        "4092": D(20000),
    }

    listed = finsync("erp", "mapping", "list").stdout
    assert analytics in listed and f"{entity} at 10 %" in listed

    # A rule postings used keeps its accounts.
    file.write_text(
        mapping_file(tag, entity).replace('revenue_account = "4091"', 'revenue_account = "4092"')
    )
    moved = finsync("erp", "mapping", "load", str(file))
    assert moved.returncode == 1
    assert f"rule '{analytics}' was used by postings" in moved.stdout

    # Without its rules: those postings used are retired, the 8 % rule nobody used deleted.
    file.write_text(ACCOUNTS)
    dropped = finsync("erp", "mapping", "load", str(file))
    assert dropped.returncode == 0, dropped.stdout
    assert f"rule {tag}-consumption-8 deleted" in dropped.stdout
    with db.connect(settings) as conn:
        rules = conn.execute(
            "SELECT rule_id, active FROM erp.gl_mapping_rules WHERE rule_id LIKE %s "
            "ORDER BY rule_id",
            (f"{tag}-%",),
        ).fetchall()
        assert ledger.run(conn, entity, None) == []  # retired rules' accounts still checked
    assert rules == [(analytics, False), (ten, False), (platform, False)]
