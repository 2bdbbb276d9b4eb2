"""Breaks planted straight into the books that tests/e2e/test_books.py played, one of each kind
`finsync reconcile` checks, and the report it must give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from finsync.contract.events import (
    OpportunityClosed,
    PaymentSettled,
)
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime import db
from finsync.runtime.serde import Serde
from tests.e2e.books_story import Books, scalar
from tests.support import publish


def reconcile_json(b: Books) -> dict[str, object]:
    env = {**os.environ, "FINSYNC_DATABASE_URL": b.settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "reconcile", "--json",
         "--since", b.started.isoformat()],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def plant(b: Books, serde: Serde) -> dict[str, list[str]]:
    """One break of each kind, straight into the systems' tables (and a CRM and a gateway
    document nobody acted on); returns check -> the scope each must be reported under."""
    us = f"OPP-{b.tag}-ACME-US"
    paid = billing_jobs.invoice_id(us, date(2026, 2, 1))
    taxed = billing_jobs.invoice_id(us, date(2026, 3, 1))
    deferred = billing_jobs.invoice_id(f"OPP-{b.tag}-ACME-UK", date(2026, 3, 10))
    orphan_opp = f"OPP-{b.tag}-ORPHAN"
    orphan_pay = f"PAY-{b.tag}-ORPHAN"
    with db.connect(b.settings) as conn, conn.transaction():
        # A journal line written around the balance trigger, on an account no check ties.
        conn.execute("ALTER TABLE erp.journal_lines DISABLE TRIGGER journal_balanced")
        entry = conn.execute(
            "SELECT entry_id, idempotency_key FROM erp.journal_entries "
            "WHERE legal_entity = 'ACME-DE' ORDER BY entry_id LIMIT 1"
        ).fetchone()
        conn.execute(
            "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
            "VALUES (%s, 99, '6100', 1, 0)",
            (entry[0],),
        )
        conn.execute("ALTER TABLE erp.journal_lines ENABLE TRIGGER journal_balanced")
        conn.execute(  # AR changed without a journal
            "UPDATE erp.ar_open_items SET open_amount = open_amount + 1 WHERE invoice_id = %s",
            (paid,),
        )
        pay = conn.execute(  # unapplied cash changed without a journal
            "UPDATE erp.payments SET applied_amount = applied_amount - 1, "
            "unapplied_amount = unapplied_amount + 1, unapplied_open = unapplied_open + 1 "
            "WHERE invoice_id = %s "
            "RETURNING payment_id",
            (taxed,),
        ).fetchone()
        conn.execute(  # a schedule that no longer matches what its invoice deferred
            "UPDATE erp.revenue_schedules SET amount = amount + 1 WHERE invoice_id = %s "
            "AND period = '2027-03-01'",
            (deferred,),
        )
        conn.execute(  # billing's tax changed after posting
            "UPDATE billing.invoices SET tax_total = tax_total + 1 WHERE invoice_id = %s",
            (taxed,),
        )
        conn.execute(  # an invoice billing issued that never reached the ERP
            "INSERT INTO billing.invoices (invoice_id, invoice_number, subscription_id, "
            "billing_date, account_id, legal_entity, currency, issued_on, due_on, subtotal, "
            "tax_total, total) SELECT 'INV-' || %s, 'X-' || %s, subscription_id, '2030-01-01', "
            "account_id, legal_entity, currency, '2030-01-01', '2030-01-31', 1, 0, 1 "
            "FROM billing.subscriptions WHERE opportunity_id = %s",
            (b.tag, b.tag, us),
        )
        conn.execute(  # a due period whose invoice line is gone
            "DELETE FROM billing.invoice_lines WHERE invoice_id = %s AND line_id = '1' "
            "AND NOT EXISTS (SELECT 1 FROM billing.credit_memos WHERE invoice_id = %s)",
            (paid, paid),
        )
        [memo] = b.paid_credits
        conn.execute(  # customer credit changed without a journal, its balance alike
            "UPDATE erp.customer_credits SET amount = amount + 1 "
            "WHERE kind = 'CREATED' AND document_id = %s",
            (memo.credit_memo_id,),
        )
        conn.execute(
            "UPDATE erp.customer_credit_balances SET held = held + 1 WHERE account_id = %s "
            "AND legal_entity = %s AND currency = %s",
            (memo.account_id, memo.legal_entity, memo.currency),
        )
        conn.execute(  # a journal moving a mapped tax account that no document explains
            "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
            "SELECT journal_entry_id, n, a, d, c FROM (SELECT journal_entry_id FROM erp.payments "
            "WHERE legal_entity = 'ACME-JP' ORDER BY payment_id LIMIT 1) p, "
            "(VALUES (97, '6100', 1, 0), (98, '2210', 0, 1)) AS x(n, a, d, c)"
        )
        customer = conn.execute(  # the ERP's customer renamed behind the cross-reference
            "UPDATE erp.customers SET name = name || ' (renamed)' WHERE account_id = %s "
            "RETURNING account_id",
            (f"ACC-{b.tag}-ACME-JP",),
        ).fetchone()
    orphan = replace_ids(b.opportunities[f"OPP-{b.tag}-ACME-DE"], orphan_opp)
    publish(b.settings, serde, [orphan, _payment(b, orphan_pay, "JPY")])
    sub = scalar(
        b, "SELECT subscription_id FROM billing.subscriptions WHERE opportunity_id = %s", us
    )
    return {
        # The planted line is in EUR, ACME-DE's functional currency: unbalanced in both.
        "trial-balance": ["ACME-DE EUR", "ACME-DE functional EUR"],
        "gl-ar": [f"invoice {paid}"],
        "gl-unapplied-cash": [f"payment {pay[0]}"],
        "gl-deferred-revenue": [f"invoice {deferred}"],
        "gl-tax": [f"invoice {taxed}", "ACME-JP JPY"],
        "gl-customer-credit": [f"credit memo {memo.credit_memo_id}"],
        "opportunity-subscription": [f"opportunity {orphan_opp}"],
        "due-periods-invoiced": [f"subscription {sub}"],
        "invoice-posted": [f"invoice INV-{b.tag}"],
        "payment-applied": [f"payment {orphan_pay}"],
        "customers-agree": [f"account {customer[0]}"],
    }


def replace_ids(o: OpportunityClosed, opportunity_id: str) -> OpportunityClosed:
    """The same deal under another id, for an account the CRM never sent: nothing can act."""
    return o.model_copy(
        update={"event_id": uuid.uuid4(), "opportunity_id": opportunity_id,
                "account_id": f"{opportunity_id}-ACC"}
    )  # fmt: skip


def _payment(b: Books, payment_id: str, currency: str) -> PaymentSettled:
    return PaymentSettled(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="gateway",
        correlation_id=f"corr-{payment_id}",
        payment_id=payment_id,
        account_id=f"{payment_id}-ACC",  # never synced: it waits in retry
        invoice_id=None,
        amount=Decimal(1000),
        fee_amount=Decimal(0),
        currency=currency,
        settled_at=datetime(2027, 2, 20, tzinfo=UTC),
        method="CARD",
        gateway_reference="ch_orphan",
    )
