"""Realised FX and cross-currency application on the real stack (payment-settler and
invoice-poster as processes, plain publishers): ACME-UK (functional GBP) invoices in EUR, paid
later at other rates, their AR relieved at the booked rate and the difference to 7100 / 7200;
a GBP payment applied to a EUR invoice at the day's cross rate. The books reconcile after each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finsync.adapters.crossref import CrossReferenceStore
from finsync.books import functional, ledger
from finsync.contract.events import InvoiceIssued, InvoiceLine, PaymentSettled
from finsync.ports.billing import BillingAccount
from finsync.ports.crossref import AccountLink
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp.adapter import ReferenceErp
from finsync.reference.erp.revaluation import revalue
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.invoice_poster.handler import post_invoice as post_invoice_as_poster
from tests.integration.port_support import a_customer, uid
from tests.support import FAST_RETRIES, ServiceProcess, eventually, publish

pytestmark = pytest.mark.integration

D = Decimal
UK = "ACME-UK"
# Rates of these tests only: later than any other journal's date. EUR -> GBP is the direction
# deploy/fx-rates.sample.csv loads, so GBP -> EUR is its inverse.
JAN, FEB, MAR = date(2310, 1, 1), date(2310, 2, 1), date(2310, 3, 1)
RATES = ((JAN, "0.8555"), (FEB, "0.86"), (MAR, "0.80"))
GBP_EUR = D("1.1627906977")  # 1 / 0.86


@pytest.fixture
def settler(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("payment-settler", tmp_path, dict(FAST_RETRIES)).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


@pytest.fixture
def rates(settings: Settings) -> None:
    with db.connect(settings) as conn, conn.transaction():
        for on, rate in RATES:
            conn.execute(
                "INSERT INTO erp.fx_rates (rate_date, from_currency, to_currency, rate) "
                "VALUES (%s, 'EUR', 'GBP', %s) ON CONFLICT DO NOTHING",
                (on, D(rate)),
            )
        # The cross rate GBP -> EUR loaded as such (else the inverse of EUR -> GBP's).
        conn.execute(
            "INSERT INTO erp.fx_rates (rate_date, from_currency, to_currency, rate) "
            "VALUES (%s, 'GBP', 'EUR', %s) ON CONFLICT DO NOTHING",
            (FEB, GBP_EUR),
        )


def uk_account(settings: Settings) -> str:
    """An Irish customer of ACME-UK, billed in EUR, synced (account-sync is not under test)."""
    customer = a_customer(legal_entity=UK, currency="EUR", country="IE")
    with db.connect(settings) as conn, conn.transaction():
        customer_id = ReferenceErp(conn).create_customer(customer)
        billing_id = ReferenceBilling(conn).create_account(
            BillingAccount(
                customer.account_id, customer.name, customer.country, customer.currency,
                customer.legal_entity, customer.email_domain, None,
            )
        )  # fmt: skip
        CrossReferenceStore(conn).save(
            AccountLink(
                customer.account_id, customer_id, billing_id, 1, customer.name,
                customer.name.lower(), customer.country, customer.currency, customer.legal_entity,
            )
        )  # fmt: skip
    return customer.account_id


def post_invoice(
    settings: Settings, account_id: str, amount: str, on: date, entity: str = UK
) -> str:
    """The invoice booked in ACME-UK's books as invoice-poster books it (not under test here)."""
    with db.connect(settings) as conn, conn.transaction():
        return book_invoice(conn, account_id, amount, on, entity)


def book_invoice(
    conn: psycopg.Connection, account_id: str, amount: str, on: date, entity: str = UK
) -> str:
    invoice_id = uid("INV")
    line = InvoiceLine(
        line_id="1", description="Onboarding", sku="ONBOARDING", amount=D(amount), tax_amount=D(0)
    )
    issued = InvoiceIssued(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="billing",
        correlation_id=f"corr-{invoice_id}", invoice_id=invoice_id,
        invoice_number=f"{entity}-{invoice_id}", account_id=account_id, legal_entity=entity,
        currency="EUR", issued_on=on, due_on=on + timedelta(days=30), lines=[line],
        subtotal=D(amount), tax_total=D(0), total=D(amount),
    )  # fmt: skip
    erp = ReferenceErp(conn)
    post_invoice_as_poster(issued, erp)
    erp.flush()
    return invoice_id


def payment(
    account_id: str, amount: str, invoice_id: str, on: date, currency: str = "EUR"
) -> PaymentSettled:
    payment_id = uid("PAY")
    return PaymentSettled(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), source="payments",
        correlation_id=f"corr-{payment_id}", payment_id=payment_id, account_id=account_id,
        invoice_id=invoice_id, amount=D(amount), fee_amount=D(0), currency=currency,
        settled_at=datetime(on.year, on.month, on.day, 12, tzinfo=UTC), method="WIRE",
        gateway_reference=uid("GW"),
    )  # fmt: skip


def booked(conn: psycopg.Connection, payment_id: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT l.account_code, l.debit, l.credit, l.functional_debit, l.functional_credit, "
        "l.rate FROM erp.payments p JOIN erp.journal_lines l ON l.entry_id = p.journal_entry_id "
        "WHERE p.payment_id = %s ORDER BY l.line_no",
        (payment_id,),
    ).fetchall()


def functional_ar(conn: psycopg.Connection, invoice_id: str, *payment_ids: str) -> object:
    """1200 in GBP of the invoice's journal and its payments' (one invoice each here)."""
    row = conn.execute(
        "SELECT sum(l.functional_debit - l.functional_credit) FROM erp.journal_lines l "
        "WHERE l.account_code = '1200' AND l.entry_id IN ("
        "  SELECT journal_entry_id FROM erp.ar_open_items WHERE invoice_id = %s "
        "  UNION ALL SELECT journal_entry_id FROM erp.payments WHERE payment_id = ANY(%s))",
        (invoice_id, list(payment_ids)),
    ).fetchone()
    return row[0] if row else None


def settled(settings: Settings, payment_id: str) -> bool:
    with db.connect(settings) as conn:
        found = conn.execute("SELECT 1 FROM erp.payments WHERE payment_id = %s", (payment_id,))
        return found.fetchone() is not None


def no_breaks(settings: Settings, since: datetime, *ids: str) -> None:
    with db.connect(settings) as conn:
        params: dict[str, object] = {"entity": UK, "since": since}
        found = ledger.gl_ar(conn, params) + ledger.gl_unapplied(conn, params)
        found += functional.balance(conn, params)
    mine = [f for f in found if any(i in f.scope or i in " ".join(f.documents) for i in ids)]
    assert mine == []
    # Functional AR per entity and currency (no document names: the whole of ACME-UK EUR).
    assert [f for f in found if f.scope == f"{UK} EUR functional GBP"] == []


def test_payments_at_other_rates_relieve_ar_at_the_booked_rate_and_book_realised_fx(
    settings: Settings, serde: Serde, rates: None, settler: ServiceProcess
) -> None:
    since = datetime.now(UTC)
    payer = uk_account(settings)
    whole = post_invoice(settings, payer, "1000.00", JAN + timedelta(days=9))  # 855.50 GBP
    part = post_invoice(settings, payer, "100.01", JAN + timedelta(days=9))  # 85.56 GBP
    gain = payment(payer, "1000.00", whole, FEB + timedelta(days=2))
    first = payment(payer, "50.00", part, FEB + timedelta(days=2))
    last = payment(payer, "50.01", part, MAR + timedelta(days=2))
    publish(settings, serde, [gain, first, last])
    # first and last may apply in either order: both relieve 42.78 (one its share, one the rest).
    every = (gain, first, last)
    eventually(lambda: all(settled(settings, p.payment_id) for p in every), 30, "the payments")
    with db.connect(settings) as conn:
        assert booked(conn, gain.payment_id) == [
            ("1000", D("1000.0000"), D(0), D("860.0000"), D(0), D("0.8600000000")),
            ("1200", D(0), D("1000.0000"), D(0), D("855.5000"), D("0.8555000000")),
            ("7100", D(0), D(0), D(0), D("4.5000"), None),
        ]
        assert booked(conn, first.payment_id) == [
            ("1000", D("50.0000"), D(0), D("43.0000"), D(0), D("0.8600000000")),
            ("1200", D(0), D("50.0000"), D(0), D("42.7800"), D("0.8555000000")),  # 42.775
            ("7100", D(0), D(0), D(0), D("0.2200"), None),
        ]
        assert booked(conn, last.payment_id) == [
            ("1000", D("50.0100"), D(0), D("40.0100"), D(0), D("0.8000000000")),
            ("1200", D(0), D("50.0100"), D(0), D("42.7800"), D("0.8555000000")),  # what is open
            ("7200", D(0), D(0), D("2.7700"), D(0), None),
        ]
        assert functional_ar(conn, whole, gain.payment_id) == D(0)
        assert functional_ar(conn, part, first.payment_id, last.payment_id) == D(0)
    no_breaks(settings, since, whole, part, gain.payment_id, first.payment_id, last.payment_id)


def test_a_gbp_payment_pays_a_eur_invoice_at_the_days_cross_rate(
    settings: Settings, serde: Serde, rates: None, settler: ServiceProcess
) -> None:
    since = datetime.now(UTC)
    payer = uk_account(settings)
    inv = post_invoice(settings, payer, "1000.00", JAN + timedelta(days=9))  # 855.50 GBP
    pay = payment(payer, "860.00", inv, FEB + timedelta(days=2), currency="GBP")
    publish(settings, serde, [pay])
    eventually(lambda: settled(settings, pay.payment_id), 30, "the payment applied")
    with db.connect(settings) as conn:
        assert conn.execute(
            "SELECT currency, amount, applied_amount, status, original_currency, "
            "original_amount, cross_rate FROM erp.payments WHERE payment_id = %s",
            (pay.payment_id,),
        ).fetchone() == (
            "EUR", D("1000.0000"), D("1000.0000"), "PAID", "GBP", D("860.0000"), GBP_EUR,
        )  # fmt: skip
        # In EUR, the bank at the 860.00 GBP that arrived, AR at its booked 0.8555.
        assert booked(conn, pay.payment_id) == [
            ("1000", D("1000.0000"), D(0), D("860.0000"), D(0), D("0.8600000000")),
            ("1200", D(0), D("1000.0000"), D(0), D("855.5000"), D("0.8555000000")),
            ("7100", D(0), D(0), D(0), D("4.5000"), None),
        ]
        assert functional_ar(conn, inv, pay.payment_id) == D(0)
    no_breaks(settings, since, inv, pay.payment_id)


def test_revalue_books_open_foreign_ar_at_the_period_end_rate_once_and_reverses_it(
    conn: psycopg.Connection, rates: None
) -> None:
    entity = uid("FXUK")  # an entity of its own (rolled back): only this test's invoices
    conn.execute(
        "INSERT INTO erp.legal_entities (legal_entity, name, functional_currency) "
        "VALUES (%s, 'FX test Ltd', 'GBP')",
        (entity,),
    )
    book_invoice(conn, uid("ACC"), "1000.00", JAN + timedelta(days=9), entity)  # 855.50
    book_invoice(conn, uid("ACC"), "100.01", FEB + timedelta(days=9), entity)  # 86.01
    book_invoice(conn, uid("ACC"), "5.00", MAR + timedelta(days=9), entity)  # after as-of
    as_of = FEB + timedelta(days=27)  # 0.86 on 28 February
    [dry] = revalue(conn, as_of, entity, dry_run=True)
    r = dry.revaluation
    assert (dry.outcome, r.items, r.open_amount, r.booked, r.revalued, r.difference) == (
        "WOULD POST", 2, D("1100.01"), D("941.51"), D("946.01"), D("4.50"),
    )  # fmt: skip
    [done] = revalue(conn, as_of, entity, dry_run=False)
    assert done.outcome == "POSTED" and done.revaluation == r
    posted = conn.execute(
        "SELECT e.idempotency_key, e.accounting_date, l.account_code, l.functional_debit, "
        "l.functional_credit FROM erp.journal_entries e JOIN erp.journal_lines l USING (entry_id) "
        "WHERE e.legal_entity = %s AND e.idempotency_key LIKE 'fx-revaluation%%' "
        "ORDER BY 1, l.line_no",
        (entity,),
    ).fetchall()
    key = f"{entity}:EUR:{as_of.isoformat()}"
    assert posted == [
        (f"fx-revaluation-reversal:{key}", MAR, "1210", D(0), D("4.5000")),
        (f"fx-revaluation-reversal:{key}", MAR, "7300", D("4.5000"), D(0)),
        (f"fx-revaluation:{key}", as_of, "1210", D("4.5000"), D(0)),
        (f"fx-revaluation:{key}", as_of, "7300", D(0), D("4.5000")),
    ]
    [again] = revalue(conn, as_of, entity, dry_run=False)
    assert again.outcome == "ALREADY POSTED"
    params: dict[str, object] = {"entity": entity, "since": None}
    assert ledger.run(conn, entity, None) == []
    assert functional.balance(conn, params) == []
