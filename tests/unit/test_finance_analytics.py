"""finance-analytics' pure rules: what each event adds, and the figures of a day."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal as D

from finsync.contract.events import (
    Application,
    ApplicationKind,
    DocumentType,
    InvoicePosted,
    JournalLine,
    OpportunityClosed,
    PaymentApplied,
    PaymentStatus,
)
from services.finance_analytics import facts
from services.finance_analytics.facts import Fact, Measure
from services.finance_analytics.ledger import Ledger, bucket
from services.finance_analytics.publishing import Publisher
from services.finance_analytics.reader import count_key

DAY = date(2026, 3, 10)
AT = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
ENV = {"occurred_at": AT, "source": "test", "correlation_id": "c"}


def line(account: str, debit: str = "0", credit: str = "0") -> JournalLine:
    return JournalLine(account_code=account, debit=D(debit), credit=D(credit))


def invoice(
    inv: str, total: str, day: date = DAY, due: date | None = DAY, **kw: object
) -> InvoicePosted:
    return InvoicePosted(
        event_id=uuid.uuid4(), **ENV, invoice_id=inv, document_id=inv, erp_document_id="d",
        journal_entry_id="j", legal_entity="ACME-US", currency="USD", posted_at=AT,
        accounting_date=day, due_on=due,
        journal_lines=[line("1200", debit=total), line("4000", credit=total)], **kw,
    )  # fmt: skip


def credit_memo(inv: str, to_ar: str, to_credit: str = "0", day: date = DAY) -> InvoicePosted:
    total = str(D(to_ar) + D(to_credit))
    return InvoicePosted(
        event_id=uuid.uuid4(), **ENV, invoice_id=inv, document_type=DocumentType.CREDIT_MEMO,
        document_id=f"cm-{inv}", erp_document_id="d", journal_entry_id="j",
        legal_entity="ACME-US", currency="USD", posted_at=AT, accounting_date=day,
        journal_lines=[line("4000", debit=total), line("1200", credit=to_ar),
                       line("2400", credit=to_credit)],
    )  # fmt: skip


def payment(inv: str | None, applied: str, unapplied: str = "0", written_off: str = "0",
            day: date = DAY) -> PaymentApplied:  # fmt: skip
    cash = D(applied) + D(unapplied)
    apps = (
        [Application(invoice_id=inv, applied_amount=D(applied), written_off_amount=D(written_off),
                     invoice_open_after=D(0), kind=ApplicationKind.SETTLEMENT)]
        if inv else []
    )  # fmt: skip
    return PaymentApplied(
        event_id=uuid.uuid4(), **ENV, payment_id=f"p-{inv}", invoice_id=inv, currency="USD",
        applied_amount=D(applied), unapplied_amount=D(unapplied), status=PaymentStatus.PAID,
        journal_entry_id="j", legal_entity="ACME-US", accounting_date=day, applications=apps,
        journal_lines=[line("1000", debit=str(cash)), line("6900", debit=written_off),
                       line("1200", credit=str(D(applied) + D(written_off))),
                       line("2100", credit=unapplied)],
    )  # fmt: skip


def test_an_invoice_bills_and_opens_its_receivable_from_its_due_date() -> None:
    found = facts.of_posting(invoice("i1", "118.00", due=date(2026, 4, 9)))
    assert [(f.measure, f.amount, f.due_on) for f in found] == [
        (Measure.BILLINGS, D("118.00"), None),
        (Measure.RECEIVABLE, D("118.00"), date(2026, 4, 9)),
    ]


def test_a_credit_memo_takes_off_only_its_receivable_part() -> None:
    found = facts.of_posting(credit_memo("i1", to_ar="30", to_credit="20"))
    assert [(f.measure, f.amount) for f in found] == [
        (Measure.CREDITS, D(50)),
        (Measure.RECEIVABLE, D(-30)),
    ]


def test_a_payment_collects_what_it_applies_and_holds_the_rest() -> None:
    found = facts.of_application(payment("i1", "90", unapplied="15", written_off="0.50"))
    assert [(f.measure, f.amount) for f in found] == [
        (Measure.COLLECTIONS, D(90)),
        (Measure.RECEIVABLE, D("-90.50")),
        (Measure.UNAPPLIED, D(15)),
    ]


def test_bookings_are_dated_by_the_close_and_count_once_per_deal() -> None:
    deal = OpportunityClosed(
        event_id=uuid.uuid4(), **ENV, opportunity_id="o1", account_id="a", closed_at=AT,
        currency="USD", legal_entity="ACME-US", lines=[], total_contract_value=D("1200"),
    )  # fmt: skip
    resent = deal.model_copy(update={"event_id": uuid.uuid4()})
    assert count_key(deal) == count_key(resent)
    assert facts.of_opportunity(deal) == [Fact(Measure.BOOKINGS, "ACME-US", "USD", DAY, D(1200))]
    posted = invoice("i1", "1")
    assert count_key(posted) != count_key(posted.model_copy(update={"event_id": uuid.uuid4()}))


def test_facts_survive_their_changelog_form_exactly() -> None:
    for f in facts.of_posting(invoice("i1", "0.0001")) + facts.of_dead_letter("s", 0):
        assert Fact.from_json(f.as_json()) == f


def test_aging_buckets() -> None:
    assert [bucket(d) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4,
    ]  # fmt: skip


def ledger_of(*events: InvoicePosted | PaymentApplied) -> Ledger:
    ledger = Ledger()
    for e in events:
        ledger.add(facts.of_posting(e) if isinstance(e, InvoicePosted) else facts.of_application(e))
    return ledger


def test_open_ar_ages_by_due_date_as_of_each_day() -> None:
    ledger = ledger_of(
        invoice("old", "100", day=date(2026, 1, 1), due=date(2026, 1, 31)),
        invoice("new", "50", day=date(2026, 3, 1), due=date(2026, 3, 31)),
        payment("old", "40", day=date(2026, 3, 5)),
    )
    rows = {r.day: r for r in ledger.figures(date(2026, 3, 31))}
    assert rows[date(2026, 3, 4)].aging == (D(50), D(0), D(100), D(0), D(0))  # 32 days past
    march5 = rows[date(2026, 3, 5)]
    assert march5.open_ar == D(110) and march5.collections == D(40)
    assert march5.aging == (D(50), D(0), D(60), D(0), D(0))
    assert rows[date(2026, 1, 31)].aging == (D(100), D(0), D(0), D(0), D(0))  # due that day
    assert rows[date(2026, 2, 1)].aging == (D(0), D(100), D(0), D(0), D(0))
    assert len(rows) == 90  # every day from the first activity, quiet days too


def test_balances_go_on_ageing_through_today() -> None:
    ledger = ledger_of(invoice("a", "80", due=DAY))
    rows = ledger.figures(date(2026, 4, 20))
    assert rows[-1].day == date(2026, 4, 20) and rows[-1].aging[2] == D(80)  # 41 days past
    ledger.add(facts.of_posting(invoice("typo", "5", day=date(2310, 3, 10))))
    rows = ledger.figures(date(2026, 4, 20))  # a far-future date does not push today out
    assert rows[-1].day == date(2026, 4, 20) and rows[-1].open_ar == D(80) and len(rows) == 42


def test_dso_is_open_ar_over_the_90_days_net_billings() -> None:
    ledger = ledger_of(invoice("a", "900"), credit_memo("a", to_ar="300"), payment("a", "300"))
    (row,) = ledger.figures()
    assert (row.billings, row.credits, row.net_billings) == (D(900), D(300), D(600))
    assert row.open_ar == D(300) and row.dso == D("45.0")  # 300 / 600 x 90
    assert ledger_of(payment(None, "0", unapplied="5")).figures()[0].dso is None


def test_cash_applied_before_its_invoice_is_seen_ages_once_the_invoice_arrives() -> None:
    ledger = ledger_of(payment("late", "30"))
    assert ledger.figures()[0].aging[0] == D(-30)  # counted as current until then
    ledger.add(facts.of_posting(invoice("late", "100", due=date(2026, 1, 1))))
    (row,) = ledger.figures()
    assert row.open_ar == D(70) and row.aging == (D(0), D(0), D(0), D(70), D(0))


def test_unapplied_cash_and_dead_letters() -> None:
    ledger = ledger_of(payment(None, "0", unapplied="25"))
    ledger.add(facts.of_dead_letter("invoice-poster", int(AT.timestamp() * 1000)))
    assert ledger.figures()[0].unapplied_cash == D(25)
    assert ledger.dead_letters() == {DAY: {"invoice-poster": 1}}


def test_only_changed_days_are_published_again() -> None:
    ledger = ledger_of(invoice("a", "10", day=date(2026, 3, 1)), invoice("b", "5"))
    publisher = Publisher()
    first = publisher.changed(ledger, AT)
    assert [e.day for e in first] == [date(2026, 3, d) for d in range(1, 11)]
    for e in first:
        publisher.mark_sent(e)
    assert publisher.changed(ledger, AT) == []
    ledger.add(facts.of_application(payment("b", "5")))
    assert [e.day for e in publisher.changed(ledger, AT)] == [DAY]


def test_the_web_view_reads_back_exactly_and_refuses_float_amounts() -> None:
    import json

    import pytest

    from finsync.ops.kpis import AnalyticsUnavailable, parse
    from services.finance_analytics.views import as_json

    ledger = ledger_of(invoice("a", "0.0001", due=date(2026, 1, 1)), payment(None, "0", "7.5"))
    body = json.loads(json.dumps(as_json(ledger, True, 90, DAY)))
    (row,) = parse(body).of("ACME-US", "USD")[-1:]
    assert row.open_ar == D("0.0001") and row.aging[3] == D("0.0001")
    assert row.unapplied_cash == D("7.5")
    body["figures"][0]["open_ar"] = 0.1
    with pytest.raises(AnalyticsUnavailable, match="float"):
        parse(body)


def test_days_outside_the_figures_are_never_published_empty() -> None:
    ledger = ledger_of(invoice("a", "10"))
    ledger.add(facts.of_dead_letter("invoice-poster", 0))  # 1970: long before the figures
    days = [e.day for e in Publisher().changed(ledger, AT)]
    assert days == [DAY]
