"""GL mapping: which rule chooses a line's accounts, what a mapping file may hold, and what the
poster books by it."""

import tomllib
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import reverse
from finsync.domain.gl_mapping import (
    DEFAULT_REVENUE,
    DEFAULT_TAX,
    GlMapping,
    RevenueAccounts,
    RevenueRule,
    TaxAccount,
    TaxRule,
)
from finsync.domain.gl_mapping_file import (
    Account,
    Existing,
    MappingFile,
    MappingInvalid,
    parse,
    plan,
)
from finsync.ports.erp import LineBalance
from services.invoice_poster.posting import LineAccounts, credit_memo_posting, invoice_posting

D = Decimal
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gl-mapping.example.toml"

PLATFORM = RevenueRule("platform", "PLAT-*", "4020", "2320")
ANALYTICS_FAMILY = RevenueRule("plat-analytics", "PLAT-AN-*", "4010", "2310")
SEAT = RevenueRule("plat-seat", "PLAT-SEAT", "4030", "2330")
JP_10 = TaxRule("jp-10", "ACME-JP", D("0.10"), "2210")
MAPPING = GlMapping([PLATFORM, ANALYTICS_FAMILY, SEAT, JP_10])


# --- resolution ---------------------------------------------------------------------------


def test_a_skus_own_rule_wins_over_its_family():
    assert MAPPING.revenue("PLAT-SEAT") == RevenueAccounts("4030", "2330", "plat-seat")


def test_the_family_of_the_longest_prefix_wins_over_a_shorter_one():
    assert MAPPING.revenue("PLAT-AN-CUBE") == RevenueAccounts("4010", "2310", "plat-analytics")
    assert MAPPING.revenue("PLAT-SEAT-Q") == RevenueAccounts("4020", "2320", "platform")
    assert MAPPING.revenue("PLAT-") == RevenueAccounts("4020", "2320", "platform")


def test_an_unknown_sku_gets_the_default_accounts_and_no_rule():
    assert MAPPING.revenue("ONBOARDING") == DEFAULT_REVENUE == RevenueAccounts("4000", "2300")
    assert MAPPING.revenue("PLAT") == DEFAULT_REVENUE  # no dash: not of the PLAT-* family
    assert GlMapping().revenue("PLAT-SEAT") == DEFAULT_REVENUE


def test_tax_is_mapped_by_legal_entity_and_rate_whatever_its_scale():
    assert MAPPING.tax("ACME-JP", D("0.1000")) == TaxAccount("2210", "jp-10")
    assert MAPPING.tax("ACME-JP", D("0.1")) == TaxAccount("2210", "jp-10")


def test_a_line_without_a_rate_or_without_a_rule_gets_the_default_tax_account():
    assert MAPPING.tax("ACME-JP", None) == DEFAULT_TAX == TaxAccount("2200")
    assert MAPPING.tax("ACME-JP", D("0.08")) == DEFAULT_TAX
    assert MAPPING.tax("ACME-DE", D("0.10")) == DEFAULT_TAX


def test_a_retired_rule_matches_nothing():
    retired = RevenueRule("plat-seat", "PLAT-SEAT", "4030", "2330", active=False)
    mapping = GlMapping([PLATFORM, retired, TaxRule("jp-10", "ACME-JP", D("0.1"), "2210", False)])
    assert mapping.revenue("PLAT-SEAT").rule == "platform"
    assert mapping.tax("ACME-JP", D("0.1")) == DEFAULT_TAX


# --- the file -------------------------------------------------------------------------------

CHART = {
    code: Account(code, name, kind)
    for code, name, kind in [
        ("1000", "Cash", "ASSET"),
        ("1200", "Accounts receivable", "ASSET"),
        ("2100", "Unapplied cash", "LIABILITY"),
        ("2200", "Tax payable", "LIABILITY"),
        ("2300", "Deferred revenue", "LIABILITY"),
        ("4000", "Revenue", "REVENUE"),
        ("6100", "Payment processing fees", "EXPENSE"),
        ("6900", "Write-offs", "EXPENSE"),
    ]
}


def read(text: str) -> MappingFile:
    return parse(tomllib.loads(text, parse_float=Decimal))


def errors_of(text: str, existing: dict[str, Existing] | None = None) -> list[str]:
    with pytest.raises(MappingInvalid) as caught:
        plan(read(text), CHART, existing or {})
    return caught.value.errors


def test_the_example_file_loads_into_a_fresh_chart():
    file = parse(tomllib.loads(EXAMPLE.read_text(), parse_float=Decimal))
    changes = plan(file, CHART, {})
    assert [a.code for a in changes.accounts_added] == [
        "4010",
        "2310",
        "4020",
        "2320",
        "2210",
        "2220",
    ]
    assert [r.rule_id for r in changes.added] == [
        "analytics",
        "platform",
        "jp-consumption-10",
        "de-vat-19",
    ]
    jp = next(r for r in file.rules if r.rule_id == "jp-consumption-10")
    assert isinstance(jp, TaxRule) and jp.rate == D("0.10")


REVENUE_4010 = """
[[account]]
code = "4010"
name = "Revenue — analytics"
kind = "REVENUE"

[[revenue]]
id = "analytics"
sku = "ANALYTICS"
revenue_account = "4010"
deferred_account = "2300"
"""


def test_a_rule_naming_an_account_the_chart_does_not_have_is_refused():
    assert errors_of(REVENUE_4010.replace('"2300"', '"2399"')) == [
        "rule 'analytics': deferred account 2399 is not in the chart of accounts "
        "(add it as an [[account]])"
    ]


def test_accounts_of_the_wrong_kind_and_control_accounts_are_refused():
    text = REVENUE_4010.replace('revenue_account = "4010"', 'revenue_account = "2200"')
    text += '[[tax]]\nid = "t"\nlegal_entity = "ACME-JP"\nrate = 0.1\ntax_account = "2100"\n'
    assert errors_of(text) == [
        "rule 'analytics': revenue account 2200 is a LIABILITY account, not REVENUE",
        "rule 't': tax account 2100 is a control account other documents post to",
    ]


def test_an_account_cannot_be_both_deferred_revenue_and_tax():
    text = '[[tax]]\nid = "t"\nlegal_entity = "ACME-JP"\nrate = 0.1\ntax_account = "2300"\n'
    assert errors_of(text) == ["account 2300 cannot be both a deferred revenue and a tax account"]


def test_duplicate_rules_are_refused():
    text = REVENUE_4010 * 2
    text += "".join(
        f'[[tax]]\nid = "{i}"\nlegal_entity = "ACME-JP"\nrate = {r}\ntax_account = "2200"\n'
        for i, r in (("a", "0.10"), ("b", "0.1"))
    )
    with pytest.raises(MappingInvalid) as caught:
        read(text)
    assert caught.value.errors == [
        "account 4010 is listed 2 times",
        "rule id 'analytics' is used by 2 rules",
        "active rules 'analytics' and 'analytics' both match sku ANALYTICS",
        "active rules 'a' and 'b' both match ACME-JP at rate 0.1",
    ]


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        ("1.5", "rate 1.5 is not a tax rate: a fraction from 0 to below 1, e.g. 0.10"),
        ("-0.1", "rate -0.1 is not a tax rate"),
        ('"ten"', "rate 'ten' is not a tax rate"),
        ("true", "rate true is not a tax rate"),
        ("0.12345", "rate 0.12345 has more than 4 decimals"),
    ],
)
def test_a_bad_rate_is_refused(rate, error):
    text = f'[[tax]]\nid = "t"\nlegal_entity = "ACME-JP"\nrate = {rate}\ntax_account = "2200"\n'
    with pytest.raises(MappingInvalid) as caught:
        read(text)
    [found] = caught.value.errors
    assert found.startswith(f"tax rule 't' {error}")


def test_a_rate_may_be_written_as_text_or_an_integer():
    for rate in ('"0.08"', "0"):
        text = f'[[tax]]\nid = "t"\nlegal_entity = "X"\nrate = {rate}\ntax_account = "2200"\n'
        [rule] = read(text).rules
        assert isinstance(rule, TaxRule) and rule.rate == D(rate.strip('"'))


def test_typos_and_bad_patterns_are_named():
    text = """
[[revenue]]
id = "x"
sku = "PL*AT-*"
revenue_acount = "4000"
deferred_account = "2300"

[[accounts]]
code = "1"
"""
    with pytest.raises(MappingInvalid) as caught:
        read(text)
    assert caught.value.errors == [
        "unknown section 'accounts' (expected [[account]], [[revenue]], [[tax]])",
        "revenue rule 'x' has an unknown key 'revenue_acount' (expected active, deferred_account, "
        "description, id, revenue_account, sku)",
        "revenue rule 'x' sku 'PL*AT-*': a family is a SKU prefix and one * at its end, "
        "e.g. PLAT-*",
        "revenue rule 'x' needs revenue_account as text",
    ]


def test_an_account_the_chart_has_must_keep_its_kind_and_may_be_renamed():
    text = '[[account]]\ncode = 2300\nname = "Deferred income"\nkind = "liability"\n'
    changes = plan(read(text), CHART, {})
    assert changes.accounts_renamed == (Account("2300", "Deferred income", "LIABILITY"),)
    assert errors_of(text.replace("liability", "EXPENSE")) == [
        "account 2300 is a LIABILITY account, not EXPENSE"
    ]


ANALYTICS = RevenueRule("analytics", "ANALYTICS", "4010", "2300")


def test_rules_are_upserted_by_id_and_a_dropped_rule_is_deleted_or_retired_if_used():
    old_seat = RevenueRule("seat", "SEAT", "4000", "2300")
    existing = {
        "analytics": Existing(ANALYTICS, used=True),
        "seat": Existing(old_seat, used=False),
        "jp-10": Existing(JP_10, used=True),
        "unused": Existing(RevenueRule("unused", "U", "4000", "2300"), used=False),
    }
    text = REVENUE_4010 + '[[revenue]]\nid = "seat"\nsku = "SEAT-*"\n'
    text += 'revenue_account = "4010"\ndeferred_account = "2300"\ndescription = "seats"\n'
    changes = plan(read(text), CHART, existing)
    assert changes.unchanged == ("analytics",)
    assert changes.changed == (RevenueRule("seat", "SEAT-*", "4010", "2300", True, "seats"),)
    assert changes.deactivated == (TaxRule("jp-10", "ACME-JP", D("0.10"), "2210", active=False),)
    assert changes.deleted == ("unused",)
    assert changes.accounts_added == (Account("4010", "Revenue — analytics", "REVENUE"),)


def test_a_rule_postings_used_keeps_its_match_and_accounts_but_may_be_retired():
    existing = {"analytics": Existing(ANALYTICS, used=True)}
    moved = REVENUE_4010.replace('revenue_account = "4010"', 'revenue_account = "4000"')
    assert errors_of(moved, existing) == [
        "rule 'analytics' was used by postings, so its match and accounts stay as they are: "
        "retire it (active = false) and add the new mapping under a new id"
    ]
    retired = plan(read(REVENUE_4010 + "active = false\n"), CHART, existing)
    assert retired.changed == (RevenueRule("analytics", "ANALYTICS", "4010", "2300", False),)


def test_a_retired_rule_frees_its_match_for_a_new_one():
    text = REVENUE_4010 + 'active = false\n[[revenue]]\nid = "analytics-2"\nsku = "ANALYTICS"\n'
    text += 'revenue_account = "4010"\ndeferred_account = "2300"\n'
    changes = plan(read(text), CHART, {})
    assert [(r.rule_id, r.active) for r in changes.added] == [
        ("analytics", False),
        ("analytics-2", True),
    ]


# --- posting by the mapping -----------------------------------------------------------------

ENVELOPE = dict(occurred_at=datetime(2026, 11, 2, tzinfo=UTC), source="billing", correlation_id="c")
YEAR = dict(service_period_start=date(2026, 1, 1), service_period_end=date(2026, 12, 31))


def jp_line(line_id, sku, amount, tax, rate, **period):
    return InvoiceLine(
        line_id=line_id, description=sku, sku=sku, amount=D(amount), tax_amount=D(tax),
        tax_rate=None if rate is None else D(rate), **period,
    )  # fmt: skip


def jp_invoice(lines):
    subtotal = sum((x.amount for x in lines), D(0))
    tax = sum((x.tax_amount for x in lines), D(0))
    return InvoiceIssued(
        event_id=uuid.uuid4(), invoice_id="INV-JP", invoice_number="N", account_id="A",
        legal_entity="ACME-JP", currency="JPY", issued_on=date(2026, 1, 1),
        due_on=date(2026, 1, 31), lines=lines, subtotal=subtotal, tax_total=tax,
        total=subtotal + tax, **ENVELOPE,
    )  # fmt: skip


def by_mapping(line):
    return LineAccounts(MAPPING.revenue(line.sku), MAPPING.tax("ACME-JP", line.tax_rate))


def rows(journal):
    return [(x.account_code, x.debit, x.credit, x.mapping_rule) for x in journal.lines]


INVOICE = jp_invoice(
    [
        jp_line("1", "PLAT-SEAT", "12000", "1200", "0.10", **YEAR),  # own rule, deferred
        jp_line("2", "PLAT-AN-CUBE", "5000", "500", "0.10"),  # family, at once
        jp_line("3", "ONBOARDING", "3000", "240", "0.08"),  # defaults; no rule for 8 %
        jp_line("4", "MISC", "1000", "100", None),  # no rate: 2200
    ]
)


def test_an_invoice_posts_each_line_to_its_mapped_accounts_and_names_the_rules():
    journal, bookings = invoice_posting(INVOICE, by_mapping)
    assert rows(journal) == [
        ("1200", D(23040), D(0), None),
        ("2330", D(0), D(12000), "plat-seat"),
        ("4010", D(0), D(5000), "plat-analytics"),
        ("4000", D(0), D(3000), None),
        ("4000", D(0), D(1000), None),
        ("2210", D(0), D(1700), "jp-10"),
        ("2200", D(0), D(340), None),
    ]
    assert [
        (b.revenue_account, b.deferred_account, b.mapping_rule, b.tax_account, b.tax_rule)
        for b in bookings
    ] == [
        ("4030", "2330", "plat-seat", "2210", "jp-10"),
        ("4010", "2310", "plat-analytics", "2210", "jp-10"),
        ("4000", "2300", None, "2200", None),
        ("4000", "2300", None, "2200", None),
    ]


def test_without_a_mapping_an_invoice_posts_as_before():
    journal, _ = invoice_posting(INVOICE)
    assert rows(journal) == [
        ("1200", D(23040), D(0), None),
        ("2300", D(0), D(12000), None),
        ("4000", D(0), D(5000), None),
        ("4000", D(0), D(3000), None),
        ("4000", D(0), D(1000), None),
        ("2200", D(0), D(2040), None),
    ]


def test_a_credit_memo_reverses_to_the_accounts_the_line_used_not_the_mapping_of_today():
    _, bookings = invoice_posting(INVOICE, by_mapping)
    kept = {
        b.line_id: LineBalance(
            b.line_id, b.amount, D(0), b.revenue_account, b.deferred_account, b.schedule,
            b.mapping_rule, b.tax_account, b.tax_rule,
        )
        for b in bookings
    }  # fmt: skip
    credited = [INVOICE.lines[0], INVOICE.lines[2]]
    memo = CreditMemoIssued(
        event_id=uuid.uuid4(), credit_memo_id="CM-1", invoice_id="INV-JP", account_id="A",
        legal_entity="ACME-JP", currency="JPY", issued_on=date(2026, 1, 20), lines=credited,
        subtotal=D(15000), tax_total=D(1440), total=D(16440), **ENVELOPE,
    )  # fmt: skip
    journal, _ = credit_memo_posting(memo, "JPY", "ACME-JP", kept)
    assert rows(journal) == [
        ("2330", D(12000), D(0), "plat-seat"),  # nothing released yet: all deferred
        ("4000", D(3000), D(0), None),
        ("2210", D(1200), D(0), "jp-10"),
        ("2200", D(240), D(0), None),
        ("1200", D(0), D(16440), None),
    ]


def test_a_reversed_line_keeps_its_rule():
    journal, _ = invoice_posting(INVOICE, by_mapping)
    assert [x.mapping_rule for x in reverse(journal.lines)] == [
        x.mapping_rule for x in journal.lines
    ]
