"""Cash on arrival, as a specification: remittances split over invoices, payers' account
hierarchies, the account cash is booked to, and the auto-apply order."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from finsync.contract.events import Allocation, PaymentSettled, PaymentStatus
from finsync.domain.accounting import CASH, GATEWAY_CLEARING
from finsync.domain.cash import Due, HeldCash, Use, auto_apply, cash_account, settle
from finsync.domain.payer import MAX_DEPTH, may_pay
from finsync.domain.write_off import Tolerances
from finsync.errors import InvalidEvent
from finsync.ports.crossref import AccountLink
from finsync.ports.erp import OpenItem
from services.payment_settler.remittance import Found, Target, split, targets

D = Decimal
AT = datetime(2026, 12, 1, tzinfo=UTC)


def pay(amount="300.00", invoice_id=None, allocations=None, method="WIRE"):
    return PaymentSettled(
        event_id=uuid.uuid4(), occurred_at=AT, source="payments", correlation_id="c",
        payment_id="PAY-1", account_id="A-1", invoice_id=invoice_id, amount=D(amount),
        fee_amount=D(0), currency="EUR", settled_at=AT, method=method, gateway_reference="GW",
        allocations=None if allocations is None
        else [Allocation(invoice_id=i, amount=D(a)) for i, a in allocations],
    )  # fmt: skip


def item(invoice_id, open_amount, account="A-1", entity="ACME-DE"):
    return OpenItem(invoice_id, invoice_id, account, entity, "EUR", date(2026, 11, 1),
                    date(2026, 12, 1), D(open_amount), D(open_amount))  # fmt: skip


def link(account, customer, parent=None):
    return AccountLink(account, customer, "B", 1, "n", "n", "DE", "EUR", "ACME-DE",
                       parent_account_id=parent)  # fmt: skip


@pytest.mark.parametrize(
    ("allocations", "invoice_id", "reason"),
    [
        ([("I-1", "200.00"), ("I-2", "100.01")], None, "more than its amount"),
        ([("I-1", "0.00")], None, "must be positive"),
        ([("I-1", "-5.00")], None, "must be positive"),
        ([("I-1", "10.00"), ("I-1", "20.00")], None, "more than once"),
        ([("I-1", "10.00")], "I-9", "none of its allocations"),
    ],
)
def test_bad_allocations_are_rejected_with_a_reason(allocations, invoice_id, reason):
    with pytest.raises(InvalidEvent, match=reason):
        targets(pay(invoice_id=invoice_id, allocations=allocations))


def test_invoice_id_may_name_one_of_the_allocations():
    got = targets(pay(invoice_id="I-2", allocations=[("I-1", "10.00"), ("I-2", "20.00")]))
    assert got == [Target("I-1", D("10.00")), Target("I-2", D("20.00"))]


def test_a_remittance_applies_each_allocation_earmarks_the_unposted_and_keeps_the_rest():
    p = pay("400.00", allocations=[("I-1", "100.00"), ("I-2", "150.00"), ("I-3", "50.00")])
    found = [
        Found(Target("I-1", D("100.00")), item("I-1", "100.00")),
        Found(Target("I-2", D("150.00")), item("I-2", "200.00")),
        Found(Target("I-3", D("50.00")), None),
    ]
    a, settled = split(p, found, "C-1", "ACME-US", Tolerances())
    assert [(x.invoice_id, x.applied_amount) for x in a.applications] == [
        ("I-1", D("100.00")),
        ("I-2", D("150.00")),
    ]
    assert [(e.invoice_id, e.amount) for e in a.earmarks] == [("I-3", D("50.00"))]
    assert (a.applied_amount, a.unapplied_amount) == (D("250.00"), D("150.00"))
    assert a.status is PaymentStatus.PARTIALLY_PAID  # I-2 stays open for 50
    assert settled["I-2"].open_after == D("50.00")
    assert a.invoice_id is None and a.legal_entity == "ACME-DE"


def test_each_allocation_writes_off_its_own_shortfall_within_tolerance():
    p = pay("299.98", allocations=[("I-1", "99.99"), ("I-2", "199.99")])
    found = [
        Found(Target("I-1", D("99.99")), item("I-1", "100.00")),
        Found(Target("I-2", D("199.99")), item("I-2", "200.00")),
    ]
    a, _ = split(p, found, "C-1", "ACME-DE", Tolerances())
    assert [x.written_off_amount for x in a.applications] == [D("0.01"), D("0.01")]
    assert a.status is PaymentStatus.PAID and a.unapplied_amount == D(0)


def test_a_strangers_invoice_is_held_for_review_not_applied():
    found = [Found(Target("I-1", None), item("I-1", "300.00", account="B-1"), "not theirs")]
    a, _ = split(pay("300.00", "I-1"), found, "C-1", "ACME-DE", Tolerances())
    assert a.applications == () and a.unapplied_amount == D("300.00")
    assert a.review_reason == "not theirs" and a.invoice_id is None


def test_invoices_of_two_legal_entities_are_rejected():
    found = [
        Found(Target("I-1", D("10.00")), item("I-1", "10.00")),
        Found(Target("I-2", D("10.00")), item("I-2", "10.00", entity="ACME-US")),
    ]
    with pytest.raises(InvalidEvent, match="legal entities"):
        split(pay("20.00", allocations=[("I-1", "10.00"), ("I-2", "10.00")]), found, "C", "X",
              Tolerances())  # fmt: skip


@pytest.mark.parametrize(
    ("method", "account"),
    [("CARD", GATEWAY_CLEARING), ("ACH", GATEWAY_CLEARING), ("card", GATEWAY_CLEARING),
     ("WIRE", CASH), ("SEPA_DEBIT", CASH), ("CHECK", CASH)],
)  # fmt: skip
def test_card_and_ach_go_to_clearing_and_the_rest_to_the_bank(method, account):
    assert cash_account(method) == account
    a, _ = split(pay(method=method), [], "C", "ACME-DE", Tolerances())
    assert a.cash_account == account


def test_the_payer_hierarchy():
    links = {
        "ROOT": link("ROOT", "C-R"),
        "CHILD": link("CHILD", "C-C", parent="ROOT"),
        "GRANDCHILD": link("GRANDCHILD", "C-G", parent="CHILD"),
        "SIBLING": link("SIBLING", "C-S", parent="ROOT"),
        "DUP": link("DUP", "C-C"),  # a linked duplicate: CHILD's customer
        "OTHER": link("OTHER", "C-O"),
        "LOOP-A": link("LOOP-A", "C-LA", parent="LOOP-B"),
        "LOOP-B": link("LOOP-B", "C-LB", parent="LOOP-A"),
    }
    of = links.get
    assert may_pay("CHILD", "CHILD", of)
    assert may_pay("GRANDCHILD", "SIBLING", of)  # a common root
    assert may_pay("DUP", "CHILD", of)  # the same ERP customer
    assert may_pay("SIBLING", "ROOT", of)
    assert not may_pay("OTHER", "CHILD", of)
    assert not may_pay("LOOP-A", "OTHER", of)  # a cycle ends the walk
    assert may_pay("LOOP-A", "LOOP-B", of)


def test_the_walk_up_is_capped():
    chain = {f"A{n}": link(f"A{n}", f"C{n}", parent=f"A{n + 1}") for n in range(100)}
    assert may_pay("A0", f"A{MAX_DEPTH}", chain.get)
    assert not may_pay("A0", "A99", chain.get)


def test_auto_apply_pays_the_oldest_due_invoice_first_from_the_oldest_payment():
    cash = [
        HeldCash("P-NEW", datetime(2026, 12, 5, tzinfo=UTC), D("50.00"), D("50.00")),
        HeldCash("P-OLD", datetime(2026, 11, 5, tzinfo=UTC), D("120.00"), D("120.00")),
    ]
    dues = [
        Due("LATE", date(2027, 1, 31), date(2026, 12, 1), D("80.00")),
        Due("EARLY", date(2026, 12, 31), date(2026, 12, 1), D("100.00")),
    ]
    assert auto_apply(cash, dues) == [
        Use("P-OLD", "EARLY", D("100.00")),
        Use("P-OLD", "LATE", D("20.00")),
        Use("P-NEW", "LATE", D("50.00")),
    ]


def test_auto_apply_skips_a_pair_that_already_has_an_application():
    cash = [HeldCash("P", AT, D("30.00"), D("30.00"))]
    dues = [Due("I-1", date(2026, 12, 1), date(2026, 11, 1), D("10.00")),
            Due("I-2", date(2026, 12, 2), date(2026, 11, 1), D("10.00"))]  # fmt: skip
    assert auto_apply(cash, dues, frozenset({("P", "I-1")})) == [Use("P", "I-2", D("10.00"))]


def test_settle_writes_off_within_tolerance_only():
    assert settle(D("99.99"), D("100.00"), D("0.01")).written_off == D("0.01")
    short = settle(D("90.00"), D("100.00"), D("0.01"))
    assert (short.written_off, short.open_after, short.status) == (
        D(0),
        D("10.00"),
        PaymentStatus.PARTIALLY_PAID,
    )


class HeldCashErp:
    """The invoice-poster's ERP, with one earmarked payment and one payment on account."""

    def __init__(self):
        from tests.unit.test_customer_credit import FakeErp

        self.base = FakeErp(held="50.00")
        self.applied = []
        self.asked_held = False

    def __getattr__(self, name):
        return getattr(self.base, name)

    def earmarked_cash(self, invoice_id):
        from finsync.ports.erp import EarmarkedCash

        return [EarmarkedCash("P-EAR", "A", "C-1", "ACME-DE", "EUR", D("100.00"), D("100.00"))]

    def held_cash(self, holder):
        self.asked_held = True
        return []

    def apply_held_cash(self, application, journal):
        from finsync.ports.erp import Posted

        self.applied.append(application)
        return Posted("PA", "JE-PA", AT, date(2026, 12, 1))


@pytest.mark.parametrize("auto", [True, False])
def test_earmarks_always_apply_and_the_policy_switch_stops_credit_and_unapplied_cash(auto):
    from services.invoice_poster.handler import post_invoice
    from services.invoice_poster.held_cash import CashPolicy
    from tests.unit.test_customer_credit import invoice

    erp = HeldCashErp()
    events = post_invoice(invoice(), erp, None, CashPolicy(auto_apply=auto))
    posted, earmarked = events[0], events[1]
    assert [(a.payment_id, a.kind.value, a.applied_amount) for a in erp.applied] == [
        ("P-EAR", "EARMARKED", D("100.00"))
    ]
    assert earmarked.source == "finsync.invoice-poster" and earmarked.invoice_open_after == D(138)
    # Credit (50 held) and unapplied cash only with the policy on.
    assert posted.credit_applied == (D("50.00") if auto else None)
    assert erp.asked_held is auto
