"""Contract tests of the Erp port, run on each adapter in `port_support.ERPS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import psycopg
import pytest
from psycopg.errors import UniqueViolation

from finsync.contract.events import PaymentStatus
from finsync.domain.accounting import ZERO
from finsync.errors import InvalidEvent
from finsync.ports.erp import Erp
from tests.integration.port_support import (
    ErpProbe,
    a_customer,
    a_payment,
    an_invoice,
    credit_memo_journal,
    invoice_journal,
    open_amount,
    payment_journal,
    posted_invoice,
    rejected,
    uid,
)

pytestmark = pytest.mark.integration


def test_erp_creates_a_customer_and_returns_its_id(erp: Erp, erp_probe: ErpProbe) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    erp.flush()
    assert isinstance(customer_id, str) and customer_id
    assert erp_probe.customer(customer_id) == customer


def test_erp_gives_each_customer_its_own_id(erp: Erp) -> None:
    assert erp.create_customer(a_customer()) != erp.create_customer(a_customer())


def test_erp_rejects_a_second_customer_for_the_same_crm_account(
    erp: Erp, fresh_erp: Callable[[], Erp], erp_probe: ErpProbe, conn: psycopg.Connection
) -> None:
    first = a_customer()
    customer_id = erp.create_customer(first)
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        again.create_customer(replace(first, name="Someone Else AG"))
        again.flush()
    assert erp_probe.customer(customer_id) == first


def test_erp_updates_a_customers_details(erp: Erp, erp_probe: ErpProbe) -> None:
    parent = erp.create_customer(a_customer())
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    changed = replace(
        customer,
        name="Müller Maschinenbau AG",
        country="AT",
        tax_id=uid("ATU"),
        email_domain="mueller.example.at",
        parent_customer_id=parent,
    )
    erp.update_customer(customer_id, changed)
    erp.flush()
    assert erp_probe.customer(customer_id) == changed


def test_erp_posts_an_invoice_that_opens_an_ar_item_for_its_whole_amount(erp: Erp) -> None:
    item = an_invoice(uid("ACC"), "1931.50")
    posted = erp.post_invoice(item, invoice_journal(item))
    assert posted.document_id and posted.journal_entry_id
    assert posted.posted_at.tzinfo is not None
    found = erp.open_item(item.invoice_id)
    assert found == item
    assert found.open_amount == found.original_amount == Decimal("1931.50")


def test_erp_gives_each_posting_its_own_journal_entry(erp: Erp) -> None:
    first, second = an_invoice(uid("ACC")), an_invoice(uid("ACC"))
    a = erp.post_invoice(first, invoice_journal(first))
    b = erp.post_invoice(second, invoice_journal(second))
    erp.flush()
    assert a.journal_entry_id != b.journal_entry_id
    assert a.document_id != b.document_id


def test_erp_has_no_open_item_for_an_invoice_not_posted(erp: Erp) -> None:
    assert erp.open_item(uid("INV")) is None
    assert erp.open_item(uid("INV"), lock=True) is None


def test_erp_rejects_a_second_post_of_the_same_invoice(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection
) -> None:
    item = posted_invoice(erp, uid("ACC"))
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the invoice itself is the idempotency key.
        again.post_invoice(item, invoice_journal(item, key=uid("resent")))
        again.flush()
    assert fresh_erp().open_item(item.invoice_id) == item


def test_erp_rejects_a_second_post_of_the_same_invoice_in_one_unit_of_work(
    erp: Erp, conn: psycopg.Connection
) -> None:
    item = an_invoice(uid("ACC"))
    with rejected(conn, UniqueViolation):
        erp.post_invoice(item, invoice_journal(item))
        erp.post_invoice(item, invoice_journal(item, key=uid("resent")))
        erp.flush()


def test_erp_rejects_a_second_journal_with_the_same_key(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection
) -> None:
    first = posted_invoice(erp, uid("ACC"))
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        other = an_invoice(uid("ACC"))
        again.post_invoice(other, invoice_journal(other, key=f"invoice:{first.invoice_id}"))
        again.flush()


def test_erp_locks_and_returns_an_open_item(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"))
    assert erp.open_item(item.invoice_id, lock=True) == item
    assert erp.open_item(item.invoice_id, lock=True) == item  # a lock we hold lets us in again


def test_erp_applies_a_partial_payment_and_records_it(erp: Erp, erp_probe: ErpProbe) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    assert erp.open_item(item.invoice_id, lock=True) == item
    payment = a_payment(customer_id, customer.account_id, item.invoice_id, "40.00", "40.00")
    posted = erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert posted.document_id and posted.journal_entry_id
    assert open_amount(erp, item.invoice_id) == Decimal("60.00")
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_reduces_the_open_amount_by_what_is_applied_and_what_is_written_off(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(
        customer_id,
        customer.account_id,
        item.invoice_id,
        amount="99.97",
        applied="99.97",
        written_off="0.03",
        fee="2.90",
        status=PaymentStatus.PAID,
    )
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert open_amount(erp, item.invoice_id) == ZERO
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_applies_an_overpayment_up_to_the_open_amount_and_keeps_the_rest_unapplied(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(
        customer_id,
        customer.account_id,
        item.invoice_id,
        amount="150.00",
        applied="100.00",
        status=PaymentStatus.PAID,
    )
    assert payment.unapplied_amount == Decimal("50.00")
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert open_amount(erp, item.invoice_id) == ZERO
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_applies_payments_one_after_the_other_within_a_unit_of_work(erp: Erp) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    for amount in ("30.00", "45.00"):
        payment = a_payment(customer_id, customer.account_id, item.invoice_id, amount, amount)
        erp.apply_payment(payment, payment_journal(payment))
    assert open_amount(erp, item.invoice_id) == Decimal("25.00")


def test_erp_rejects_a_second_application_of_the_same_payment(
    erp: Erp, fresh_erp: Callable[[], Erp], erp_probe: ErpProbe, conn: psycopg.Connection
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(customer_id, customer.account_id, item.invoice_id, "40.00", "40.00")
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the payment id itself is the idempotency key.
        again.apply_payment(payment, payment_journal(payment, key=uid("resent")))
        again.flush()
    assert open_amount(fresh_erp(), item.invoice_id) == Decimal("60.00")
    assert erp_probe.payment(payment.payment_id) == payment


def test_erp_keeps_a_payment_without_invoice_as_unapplied_cash_and_leaves_ar_alone(
    erp: Erp, erp_probe: ErpProbe
) -> None:
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    payment = a_payment(customer_id, customer.account_id, None, "100.00")
    assert payment.status is PaymentStatus.UNAPPLIED and payment.settles == ZERO
    erp.apply_payment(payment, payment_journal(payment))
    erp.flush()
    assert erp.open_item(item.invoice_id) == item
    recorded = erp_probe.payment(payment.payment_id)
    assert recorded == payment
    assert recorded.invoice_id is None and recorded.unapplied_amount == Decimal("100.00")


def test_erp_reduces_the_open_amount_by_a_credit_memo(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    amount = Decimal("30.00")
    posted = erp.post_credit_memo(uid("CM"), item.invoice_id, amount, credit_memo_journal(amount))
    erp.flush()
    assert posted.document_id and posted.journal_entry_id
    assert open_amount(erp, item.invoice_id) == Decimal("70.00")


@pytest.mark.parametrize(
    "amount",
    [
        "30.00",
        "60.00",  # more than the first post left open: still "posted before", not a refund
    ],
)
def test_erp_rejects_a_second_post_of_the_same_credit_memo(
    erp: Erp, fresh_erp: Callable[[], Erp], conn: psycopg.Connection, amount: str
) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    memo_id = uid("CM")
    erp.post_credit_memo(
        memo_id, item.invoice_id, Decimal(amount), credit_memo_journal(Decimal(amount))
    )
    erp.flush()
    with rejected(conn, UniqueViolation):
        again = fresh_erp()
        # Another journal key: the credit memo itself is the idempotency key.
        again.post_credit_memo(
            memo_id, item.invoice_id, Decimal(amount), credit_memo_journal(Decimal(amount))
        )
        again.flush()
    assert open_amount(fresh_erp(), item.invoice_id) == Decimal("100.00") - Decimal(amount)


def test_erp_refuses_a_credit_memo_larger_than_what_is_open(erp: Erp) -> None:
    item = posted_invoice(erp, uid("ACC"), "100.00")
    amount = Decimal("100.01")
    with pytest.raises(InvalidEvent, match=item.invoice_id):
        erp.post_credit_memo(uid("CM"), item.invoice_id, amount, credit_memo_journal(amount))
    assert open_amount(erp, item.invoice_id) == Decimal("100.00")


def test_erp_counts_the_invoices_of_accounts_that_still_have_an_amount_open(erp: Erp) -> None:
    first, second, other = uid("ACC"), uid("ACC"), uid("ACC")
    posted_invoice(erp, first)
    credited = posted_invoice(erp, first)
    erp.post_credit_memo(
        uid("CM"), credited.invoice_id, Decimal("100.00"), credit_memo_journal(Decimal("100.00"))
    )  # nothing left open
    posted_invoice(erp, second)
    posted_invoice(erp, other)
    waiting = an_invoice(second)
    erp.post_invoice(waiting, invoice_journal(waiting))  # in this unit of work, not flushed
    assert erp.open_invoices([first, second]) == 3
    assert erp.open_invoices([first]) == 1
    assert erp.open_invoices([uid("ACC")]) == 0
