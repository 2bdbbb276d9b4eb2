"""Tax rounded once per rate per invoice for ACME-JP, end to end: billing's invoice run, the
ERP's configuration and the invoice-poster on the real stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.contract.events import BillingPeriod, InvoiceIssued
from finsync.contract.topics import dlq_topic
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, TAX_PAYABLE
from finsync.domain.tax import TaxRounding
from finsync.ports.billing import BillingAccount, NewSubscription, Phase
from finsync.ports.erp import Erp
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.runtime import db, dlq
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, publish

pytestmark = pytest.mark.integration

D = Decimal
START = date(2025, 2, 3)  # before the other tests' subscriptions, so the run bills only ours


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def _jp_subscription(settings: Settings) -> str:
    """A Japanese customer's deal: four seat lines of 1,005 yen a month, from START."""
    opportunity = f"OPP-TAX-{uuid.uuid4().hex[:8]}"

    def seat(n: int) -> Phase:
        return Phase(str(n), f"SEAT-{n}", f"Seat {n}", D(1), D(1005), BillingPeriod.MONTHLY,
                     START, date(2026, 2, 2))  # fmt: skip

    with db.connect(settings) as conn:
        billing = ReferenceBilling(conn)
        account = billing.create_account(
            BillingAccount(f"ACC-TAX-{uuid.uuid4().hex[:8]}", "Kogane Shoji KK", "JP", "JPY",
                           "ACME-JP", None, None)
        )  # fmt: skip
        billing.create_subscription(
            NewSubscription(
                opportunity_id=opportunity,
                account_id="ACC-TAX",
                billing_account_id=account,
                legal_entity="ACME-JP",
                currency="JPY",
                correlation_id=f"o2c-{opportunity}",
                phases=tuple(seat(n) for n in range(1, 5)),
            )
        )
        conn.commit()
    return opportunity


def _balances(settings: Settings, key: str) -> dict[str, Decimal]:
    """Debit minus credit per account of the journal under `key`."""
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT l.account_code, sum(l.debit - l.credit) FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) WHERE e.idempotency_key = %s "
            "GROUP BY l.account_code",
            (key,),
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def test_the_erp_knows_how_each_legal_entity_rounds_tax(erp: Erp) -> None:
    assert erp.tax_rounding("ACME-JP") is TaxRounding.INVOICE
    assert erp.tax_rounding("ACME-DE") is TaxRounding.LINE
    assert erp.tax_rounding(f"ACME-{uuid.uuid4().hex[:6]}") is TaxRounding.LINE  # not listed


def test_billing_rounds_tax_per_invoice_for_acme_jp_only(settings: Settings) -> None:
    with db.connect(settings) as conn:
        modes = dict(
            conn.execute("SELECT legal_entity, tax_rounding FROM billing.legal_entities WHERE "
                         "legal_entity LIKE 'ACME-__'").fetchall()
        )  # fmt: skip
    assert modes == {"ACME-US": "LINE", "ACME-DE": "LINE", "ACME-UK": "LINE", "ACME-JP": "INVOICE"}


def test_an_acme_jp_invoice_is_taxed_once_per_rate_and_posted_so(
    settings: Settings, serde: Serde, poster: ServiceProcess
) -> None:
    opportunity = _jp_subscription(settings)
    invoice_id = billing_jobs.invoice_id(opportunity, START)
    result = billing_jobs.run_invoices(settings, START)
    [invoice] = [x for x in result.invoices if x.invoice_id == invoice_id]
    assert invoice.subtotal == D(4020)
    assert invoice.tax_total == D(402)  # 404 when rounded per line
    assert [x.tax_amount for x in invoice.lines] == [D(101), D(101), D(100), D(100)]
    assert {x.tax_rate for x in invoice.lines} == {D("0.10")}

    key = f"invoice:{invoice_id}"
    balances = eventually(lambda: _balances(settings, key), 60, "the invoice's posting")
    assert balances[TAX_PAYABLE] == D(-402)
    assert balances[ACCOUNTS_RECEIVABLE] == D(4422)

    # A credit memo of line 3 credits the 100 yen of tax the invoice gave it, not 101.
    memo = billing_jobs.issue_credit_memo(settings, invoice_id, "3", "seat removed", START)
    assert (memo.lines[0].tax_amount, memo.lines[0].tax_rate) == (D(100), D("0.10"))
    credited = eventually(
        lambda: _balances(settings, f"credit-memo:{memo.credit_memo_id}"), 60, "the memo's posting"
    )
    assert credited[TAX_PAYABLE] == D(100)
    assert credited[ACCOUNTS_RECEIVABLE] == D(-1105)


def test_an_acme_jp_invoice_rounded_per_line_is_a_dead_letter_that_says_why(
    settings: Settings, serde: Serde, poster: ServiceProcess
) -> None:
    opportunity = _jp_subscription(settings)
    [good] = [
        x
        for x in billing_jobs.run_invoices(settings, START).invoices
        if x.invoice_id == billing_jobs.invoice_id(opportunity, START)
    ]
    wrong_id = f"{good.invoice_id}-PER-LINE"
    wrong = good.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "invoice_id": wrong_id,
            "lines": [x.model_copy(update={"tax_amount": D(101)}) for x in good.lines],
            "tax_total": D(404),
            "total": D(4424),
        }
    )
    assert isinstance(wrong, InvoiceIssued)
    tail = TopicTail(settings, dlq_topic("invoice-poster"))
    try:
        publish(settings, serde, [wrong])
        [letter] = eventually(
            lambda: [r for r in tail.poll(0.5) if r.key_text == wrong_id], 60, "the dead letter"
        )
    finally:
        tail.close()
    reason = dlq.DeadLetter("invoice-poster", letter)
    assert reason.error_class == "InvalidEvent"
    assert "tax at 10% should be 402 JPY" in reason.reason and "not 404 JPY" in reason.reason
    assert _balances(settings, f"invoice:{wrong_id}") == {}
