"""Tax rounding per legal entity: per line, or once per tax rate per invoice."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import BillingPeriod, CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import TAX_PAYABLE
from finsync.domain.billing_schedule import due_invoices
from finsync.domain.gl_mapping import DEFAULT_REVENUE, DEFAULT_TAX
from finsync.domain.tax import TaxRounding, allocate, check_tax, line_taxes
from finsync.errors import InvalidEvent
from finsync.ports.billing import Phase
from finsync.ports.erp import LineBalance, OpenItem, Posted
from services.invoice_poster.handler import post_credit_memo, post_invoice

D = Decimal
LINE, INVOICE = TaxRounding.LINE, TaxRounding.INVOICE
TEN = D("0.10")
FOUR_LINES = [(D(1005), TEN)] * 4  # the probe: 4 x 1,005 JPY at 10%


def test_four_lines_of_1005_yen_at_10_percent_are_404_yen_rounded_per_line():
    assert line_taxes(FOUR_LINES, "JPY", LINE) == [D(101)] * 4


def test_four_lines_of_1005_yen_at_10_percent_are_402_yen_rounded_per_invoice():
    taxes = line_taxes(FOUR_LINES, "JPY", INVOICE)
    assert taxes == [D(101), D(101), D(100), D(100)]  # ties: the earlier line first
    assert sum(taxes) == D(402)


def test_the_leftover_minor_units_go_to_the_largest_remainders():
    # 100.5 + 100.4 + 100.6 = 301.5 -> 302: two yen left over, for 100.6 and then 100.5.
    taxes = line_taxes([(D(1005), TEN), (D(1004), TEN), (D(1006), TEN)], "JPY", INVOICE)
    assert taxes == [D(101), D(100), D(101)]


def test_each_rate_is_rounded_and_allocated_on_its_own():
    eight = D("0.08")
    lines = [(D(1005), TEN), (D(1005), eight), (D(1015), eight), (D(1005), TEN), (D(1005), eight)]
    # 10%: 201.0 -> 201 = 101 + 100. 8%: 80.4 + 81.2 + 80.4 = 242.0 -> 242 = 81 + 81 + 80.
    assert line_taxes(lines, "JPY", INVOICE) == [D(101), D(81), D(81), D(100), D(80)]
    assert line_taxes(lines, "JPY", LINE) == [D(101), D(80), D(81), D(101), D(80)]


def test_invoice_rounding_in_cents_and_with_a_discount_line():
    vat = D("0.19")
    # 3 x 1.9019 = 5.7057 -> 5.71, where per line it is 3 x 1.90 = 5.70.
    three = [(D("10.01"), vat)] * 3
    assert line_taxes(three, "EUR", INVOICE) == [D("1.91"), D("1.90"), D("1.90")]
    assert sum(line_taxes(three, "EUR", LINE)) == D("5.70")
    # A discount: 100.5 - 0.5 = 100, as 101 and -1.
    assert line_taxes([(D(1005), TEN), (D(-5), TEN)], "JPY", INVOICE) == [D(101), D(-1)]


def test_allocation_keeps_exact_shares_whole_and_refuses_a_total_it_cannot_reach():
    assert allocate(D(300), [D(100), D(100), D(100)], "JPY") == [D(100)] * 3
    assert allocate(D("0.012"), [D("0.0043"), D("0.0077")], "KWD") == [D("0.004"), D("0.008")]
    with pytest.raises(ValueError):
        allocate(D(305), [D(100), D(100), D(100)], "JPY")


# --- the billing invoice run -----------------------------------------------------------------


def phases(count=4, price="1005"):
    start, end = date(2026, 11, 1), date(2027, 10, 31)
    return [
        (n, Phase(str(n), f"SKU-{n}", "Seat", D(1), D(price), BillingPeriod.MONTHLY, start, end))
        for n in range(1, count + 1)
    ]


def test_the_invoice_run_rounds_tax_as_the_legal_entity_says():
    [per_line] = due_invoices(phases(), "JPY", TEN, date(2026, 11, 1))
    assert per_line.tax_total == D(404)  # the default, and every entity but ACME-JP
    [per_invoice] = due_invoices(phases(), "JPY", TEN, date(2026, 11, 1), rounding=INVOICE)
    assert per_invoice.subtotal == D(4020) and per_invoice.tax_total == D(402)
    assert [c.tax_amount for c in per_invoice.charges] == [D(101), D(101), D(100), D(100)]
    assert [c.line_id for c in per_invoice.charges] == ["1", "2", "3", "4"]


# --- what the invoice-poster accepts ---------------------------------------------------------

ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="billing", correlation_id="c")


def line(line_id, amount, tax, rate=TEN):
    return InvoiceLine(
        line_id=line_id, description="Seat", sku="SEAT", amount=D(amount), tax_amount=D(tax),
        tax_rate=rate,
    )  # fmt: skip


def jp_invoice(taxes=(101, 101, 100, 100), rate=TEN, entity="ACME-JP"):
    lines = [line(str(n), 1005, t, rate) for n, t in enumerate(taxes, 1)]
    subtotal, tax = sum(x.amount for x in lines), sum(x.tax_amount for x in lines)
    return InvoiceIssued(
        event_id=uuid.uuid4(), invoice_id="INV-JP", invoice_number="ACME-JP-2026-000001",
        account_id="A", legal_entity=entity, currency="JPY", issued_on=date(2026, 11, 1),
        due_on=date(2026, 12, 1), lines=lines, subtotal=subtotal, tax_total=tax,
        total=subtotal + tax, **ENVELOPE,
    )  # fmt: skip


def jp_memo(inv, line_id):
    [x] = [x for x in inv.lines if x.line_id == line_id]
    return CreditMemoIssued(
        event_id=uuid.uuid4(), credit_memo_id=f"CM-{line_id}", invoice_id=inv.invoice_id,
        account_id="A", legal_entity=inv.legal_entity, currency="JPY",
        issued_on=date(2026, 11, 5), lines=[x], subtotal=x.amount, tax_total=x.tax_amount,
        total=x.amount + x.tax_amount, **ENVELOPE,
    )  # fmt: skip


class FakeErp:
    """Rounds per invoice for ACME-JP, per line for everyone else, as the reference ERP."""

    def __init__(self):
        self.asked: list[str] = []
        self.posted = []
        self.items: dict[str, OpenItem] = {}
        self.lines: dict[str, tuple] = {}  # invoice lines as posted, for credit memos

    def revenue_accounts(self, legal_entity, sku):  # no GL mapping: the default accounts
        return DEFAULT_REVENUE

    def tax_account(self, legal_entity, rate):
        return DEFAULT_TAX

    def tax_rounding(self, legal_entity):
        self.asked.append(legal_entity)
        return INVOICE if legal_entity == "ACME-JP" else LINE

    def post_invoice(self, item, journal, lines=()):
        self.items[item.invoice_id] = item
        self.lines[item.invoice_id] = lines
        self.posted.append(journal)
        return Posted("AR-1", "JE-1", datetime(2026, 11, 2, tzinfo=UTC))

    def open_item(self, invoice_id, lock=False):
        return self.items.get(invoice_id)

    def earmarked_cash(self, invoice_id):  # no payment was made before its invoice here
        return []

    def held_cash(self, holder):  # and none left unapplied cash
        return []

    def credit_held(self, holder):  # no customer holds credit here
        return D(0)

    def lines_to_credit(self, invoice_id):
        return {
            b.line_id: LineBalance(
                b.line_id, b.amount, D(0), b.revenue_account, b.deferred_account, b.schedule
            )
            for b in self.lines.get(invoice_id, ())
        }

    def post_credit_memo(self, credit_memo_id, invoice_id, amount, journal, lines=(), to_credit=0):
        self.posted.append(journal)
        return Posted("CM-1", "JE-2", datetime(2026, 11, 5, tzinfo=UTC))


def tax_credited(journal):
    return sum(x.credit - x.debit for x in journal.lines if x.account_code == TAX_PAYABLE)


def test_an_invoice_rounded_per_invoice_posts_for_an_entity_that_rounds_so():
    erp = FakeErp()
    post_invoice(jp_invoice(), erp)
    assert erp.asked == ["ACME-JP"]
    assert tax_credited(erp.posted[0]) == D(402)


def test_an_invoice_rounded_per_line_is_rejected_for_an_entity_that_rounds_per_invoice():
    erp = FakeErp()
    with pytest.raises(InvalidEvent, match=r"tax at 10% should be 402 JPY .* not 404 JPY"):
        post_invoice(jp_invoice(taxes=(101, 101, 101, 101)), erp)
    assert erp.posted == []


def test_an_invoice_rounded_per_invoice_is_rejected_for_an_entity_that_rounds_per_line():
    erp = FakeErp()
    with pytest.raises(InvalidEvent, match=r"line 3: tax at 10% should be 101 JPY .* not 100 JPY"):
        post_invoice(jp_invoice(entity="ACME-US"), erp)
    assert erp.posted == []


def test_lines_without_a_tax_rate_keep_only_the_sum_checks_and_ask_the_erp_nothing():
    erp = FakeErp()
    post_invoice(jp_invoice(taxes=(101, 101, 101, 101), rate=None), erp)
    assert erp.asked == [] and tax_credited(erp.posted[0]) == D(404)


def test_a_credit_memo_of_one_line_credits_the_tax_the_invoice_gave_it():
    erp = FakeErp()
    inv = jp_invoice()
    post_invoice(inv, erp)
    post_credit_memo(jp_memo(inv, "3"), erp)  # 1,005 with 100 of the 402
    assert tax_credited(erp.posted[1]) == D(-100)
    post_credit_memo(jp_memo(inv, "1"), erp)  # and one with 101
    assert tax_credited(erp.posted[2]) == D(-101)


def test_a_credit_memo_whose_tax_no_allocation_could_give_is_rejected():
    erp = FakeErp()
    inv = jp_invoice()
    post_invoice(inv, erp)
    wrong = jp_invoice(taxes=(99, 101, 101, 101))  # the same line taxed 99: not 100 or 101
    with pytest.raises(InvalidEvent, match=r"should be 100 JPY or 101 JPY .* not 99 JPY"):
        post_credit_memo(jp_memo(wrong, "1"), erp)


@pytest.mark.parametrize("rounding", [LINE, INVOICE])
def test_a_negative_tax_rate_is_rejected(rounding):
    with pytest.raises(InvalidEvent, match=r"tax rate -0\.10"):
        check_tax("invoice X", [line("1", 1005, -101, D("-0.10"))], "JPY", rounding)
