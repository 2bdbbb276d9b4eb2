"""Customer credit balances, as a specification: a credit memo above its invoice's open amount
leaves the rest as credit (2400), and the customer's next invoice uses it."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import CreditMemoIssued, DocumentType, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import (
    ACCOUNTS_RECEIVABLE,
    CUSTOMER_CREDIT,
    DEFERRED_REVENUE,
    REVENUE,
    TAX_PAYABLE,
)
from finsync.domain.customer_credit import (
    MemoSplit,
    credit_application_journal,
    credit_to_apply,
    split_credit_memo,
)
from finsync.domain.gl_mapping import DEFAULT_REVENUE, DEFAULT_TAX
from finsync.ports.erp import CreditHolder, LineBalance, OpenItem, Posted
from services.invoice_poster.handler import post_credit_memo, post_invoice
from services.invoice_poster.posting import credit_memo_posting

D = Decimal
ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="billing", correlation_id="c")


@pytest.mark.parametrize(
    ("total", "open_amount", "receivable", "credit"),
    [
        ("119.00", "0.00", "0.00", "119.00"),  # the invoice is paid: all of it is credit
        ("119.00", "50.00", "50.00", "69.00"),  # partly paid: what is open first
        ("119.00", "119.00", "119.00", "0.00"),  # exactly what is open: no credit
        ("119.00", "238.00", "119.00", "0.00"),  # less than is open: as before
        ("1105", "0", "0", "1105"),  # yen
    ],
)
def test_a_credit_memo_clears_what_is_open_and_only_the_rest_becomes_credit(
    total, open_amount, receivable, credit
):
    split = split_credit_memo(D(total), D(open_amount))
    assert split == MemoSplit(receivable=D(receivable), credit=D(credit))
    assert split.receivable + split.credit == D(total)


@pytest.mark.parametrize(
    ("held", "total", "used"),
    [
        ("69.00", "238.00", "69.00"),  # all the credit, the invoice open for the rest
        ("300.00", "238.00", "238.00"),  # the invoice's total, the rest held for the next
        ("238.00", "238.00", "238.00"),
        ("0.00", "238.00", "0.00"),  # none held
    ],
)
def test_an_invoice_uses_the_credit_held_up_to_its_total(held, total, used):
    assert credit_to_apply(D(held), D(total)) == D(used)


def balances(journal):
    out = {}
    for x in journal.lines:
        out[x.account_code] = out.get(x.account_code, D(0)) + x.debit - x.credit
    return out


def test_using_credit_debits_customer_credit_and_credits_receivables_dated_as_the_invoice():
    j = credit_application_journal("INV-2", "N-2", "ACME-DE", "EUR", D("69.00"), date(2026, 12, 1))
    assert balances(j) == {CUSTOMER_CREDIT: D("69.00"), ACCOUNTS_RECEIVABLE: D("-69.00")}
    assert j.key == "credit-application:INV-2"
    assert (j.legal_entity, j.currency, j.accounting_date) == ("ACME-DE", "EUR", date(2026, 12, 1))


def line(line_id="1", amount="100.00", tax="19.00", start=None, end=None):
    return InvoiceLine(
        line_id=line_id, description="Seats", sku="SEAT", amount=D(amount), tax_amount=D(tax),
        service_period_start=start, service_period_end=end,
    )  # fmt: skip


def memo(lines=None, invoice_id="INV-1"):
    lines = lines or [line()]
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    return CreditMemoIssued(
        event_id=uuid.uuid4(), credit_memo_id="CM-1", invoice_id=invoice_id, account_id="A",
        legal_entity="ACME-DE", currency="EUR", issued_on=date(2026, 11, 20), lines=lines,
        subtotal=subtotal, tax_total=tax, total=subtotal + tax, **ENVELOPE,
    )  # fmt: skip


def invoice(invoice_id="INV-2", lines=None):
    lines = lines or [line("1", "200.00", "38.00")]
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    return InvoiceIssued(
        event_id=uuid.uuid4(), invoice_id=invoice_id, invoice_number=f"N-{invoice_id}",
        account_id="A", legal_entity="ACME-DE", currency="EUR", issued_on=date(2026, 12, 1),
        due_on=date(2026, 12, 31), lines=lines, subtotal=subtotal, tax_total=tax,
        total=subtotal + tax, **ENVELOPE,
    )  # fmt: skip


def test_a_memo_above_the_open_amount_reverses_revenue_and_tax_as_ever_and_splits_ar_and_2400():
    # 100.00 + 19.00 on an invoice with 50.00 open: AR down 50.00, 69.00 owed to the customer.
    lines = {"1": LineBalance("1", D("100.00"), D(0), REVENUE, DEFERRED_REVENUE, ())}
    j, _ = credit_memo_posting(memo(), "EUR", "ACME-DE", lines, to_credit=D("69.00"))
    assert balances(j) == {
        REVENUE: D("100.00"),
        TAX_PAYABLE: D("19.00"),
        ACCOUNTS_RECEIVABLE: D("-50.00"),
        CUSTOMER_CREDIT: D("-69.00"),
    }
    j, _ = credit_memo_posting(memo(), "EUR", "ACME-DE", lines, to_credit=D("119.00"))
    assert balances(j) == {REVENUE: D("100.00"), TAX_PAYABLE: D("19.00"),
                           CUSTOMER_CREDIT: D("-119.00")}  # fmt: skip


class FakeErp:
    """Keeps open items and one customer's credit balance in memory."""

    def __init__(self, held="0.00"):
        self.items: dict[str, OpenItem] = {}
        self.held = D(held)
        self.calls: list[tuple] = []

    def revenue_accounts(self, legal_entity, sku):  # no GL mapping: the default accounts
        return DEFAULT_REVENUE

    def tax_account(self, legal_entity, rate):
        return DEFAULT_TAX

    def post_invoice(self, item, journal, lines=()):
        self.items[item.invoice_id] = item
        self.calls.append(("post_invoice", item.invoice_id, journal))
        return Posted("AR-2", "JE-INV", datetime(2026, 12, 1, tzinfo=UTC), date(2026, 12, 1))

    def open_item(self, invoice_id, lock=False):
        return self.items.get(invoice_id)

    def lines_to_credit(self, invoice_id):
        return {"1": LineBalance("1", D("100.00"), D(0), REVENUE, DEFERRED_REVENUE, ())}

    def earmarked_cash(self, invoice_id):  # no payment was made before its invoice here
        return []

    def held_cash(self, holder):  # and none left unapplied cash
        return []

    def credit_held(self, holder):
        assert holder == CreditHolder("A", "ACME-DE", "EUR")
        return self.held

    def apply_credit(self, invoice_id, holder, amount, journal):
        self.held -= amount
        self.calls.append(("apply_credit", invoice_id, amount, journal))
        return Posted("CA-2", "JE-CA", datetime(2026, 12, 1, tzinfo=UTC), date(2026, 12, 1))

    def post_credit_memo(self, credit_memo_id, invoice_id, amount, journal, lines=(), to_credit=0):
        self.calls.append(("post_credit_memo", amount, to_credit, journal))
        return Posted("CM-1", "JE-CM", datetime(2026, 11, 20, tzinfo=UTC), date(2026, 11, 20))


def paid_invoice(open_amount):
    return OpenItem("INV-1", "N-1", "A", "ACME-DE", "EUR", date(2026, 11, 2), date(2026, 12, 2),
                    D("119.00"), D(open_amount))  # fmt: skip


def test_a_memo_on_a_paid_invoice_posts_with_all_of_it_held_as_credit():
    # Reported: such a memo was dead-lettered ("exceeds the open amount") after billing had
    # issued it, so billing and the ERP disagreed for good.
    erp = FakeErp()
    erp.items["INV-1"] = paid_invoice("0.00")
    [event] = post_credit_memo(memo(), erp)
    [(_, amount, to_credit, journal)] = erp.calls
    assert (amount, to_credit) == (D("119.00"), D("119.00"))
    assert balances(journal)[CUSTOMER_CREDIT] == D("-119.00")
    assert ACCOUNTS_RECEIVABLE not in balances(journal)
    assert event.document_type is DocumentType.CREDIT_MEMO and event.credit_applied is None


def test_the_next_invoice_uses_the_credit_held_and_says_so_in_its_posting():
    erp = FakeErp(held="69.00")
    [event] = post_invoice(invoice(), erp)
    [posted, (_, invoice_id, amount, journal)] = erp.calls
    assert posted[0] == "post_invoice" and erp.items["INV-2"].open_amount == D("238.00")
    assert (invoice_id, amount) == ("INV-2", D("69.00"))
    assert balances(journal) == {CUSTOMER_CREDIT: D("69.00"), ACCOUNTS_RECEIVABLE: D("-69.00")}
    assert journal.accounting_date == date(2026, 12, 1)
    assert (event.credit_applied, event.credit_journal_entry_id) == (D("69.00"), "JE-CA")
    assert event.journal_entry_id == "JE-INV"  # the invoice's own journal, as ever
    assert erp.held == D(0)


def test_an_invoice_of_a_customer_without_credit_posts_as_before():
    erp = FakeErp()
    [event] = post_invoice(invoice(), erp)
    assert [c[0] for c in erp.calls] == ["post_invoice"]
    assert (event.credit_applied, event.credit_journal_entry_id) == (None, None)
