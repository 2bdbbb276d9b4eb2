"""What the reference ERP's database itself guarantees (balanced, append-only journals;
the AR item status), whatever writes to it.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from psycopg.errors import CheckViolation, RaiseException

from finsync.contract.events import PaymentStatus
from finsync.reference.erp.adapter import ReferenceErp
from tests.integration.port_support import (
    CURRENCY,
    ENTITY,
    a_customer,
    a_payment,
    credit_memo_journal,
    payment_journal,
    posted_invoice,
    uid,
)

pytestmark = pytest.mark.integration


def _entry(conn: psycopg.Connection) -> str:
    entry_id = uid("JE-TEST")
    conn.execute(
        "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, currency, "
        "description) VALUES (%s, %s, %s, %s, 'contract test')",
        (entry_id, uid("test"), ENTITY, CURRENCY),
    )
    return entry_id


def _lines(conn: psycopg.Connection, entry_id: str, *lines: tuple[int, str, str, str]) -> None:
    """Lines (line_no, account, debit, credit) of an entry, in one statement."""
    conn.execute(
        "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit) "
        "SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::numeric[], %s::numeric[])",
        (
            entry_id,
            [n for n, _, _, _ in lines],
            [account for _, account, _, _ in lines],
            [Decimal(d) for _, _, d, _ in lines],
            [Decimal(c) for _, _, _, c in lines],
        ),
    )


def test_reference_erp_stores_a_balanced_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    _lines(
        conn,
        entry_id,
        (1, "1200", "119.00", "0"),
        (2, "4000", "0", "100.00"),
        (3, "2200", "0", "19.00"),
    )
    _lines(conn, entry_id, (4, "6100", "1.00", "0"), (5, "1000", "0", "1.00"))  # appended
    row = conn.execute(
        "SELECT sum(debit), sum(credit) FROM erp.journal_lines WHERE entry_id = %s", (entry_id,)
    ).fetchone()
    assert row == (Decimal("120.00"), Decimal("120.00"))


def test_reference_erp_refuses_an_unbalanced_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    with pytest.raises(CheckViolation, match="not balanced"), conn.transaction():
        _lines(conn, entry_id, (1, "1200", "119.00", "0"), (2, "4000", "0", "118.99"))
    with pytest.raises(CheckViolation, match="not balanced"), conn.transaction():
        _lines(conn, entry_id, (1, "1200", "119.00", "0"))  # half an entry is unbalanced too
    row = conn.execute(
        "SELECT count(*) FROM erp.journal_lines WHERE entry_id = %s", (entry_id,)
    ).fetchone()
    assert row == (0,)


def test_reference_erp_refuses_to_change_a_posted_journal(conn: psycopg.Connection) -> None:
    entry_id = _entry(conn)
    _lines(conn, entry_id, (1, "1200", "119.00", "0"), (2, "4000", "0", "119.00"))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("UPDATE erp.journal_lines SET debit = 1 WHERE entry_id = %s", (entry_id,))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("DELETE FROM erp.journal_lines WHERE entry_id = %s", (entry_id,))
    with pytest.raises(RaiseException, match="append-only"), conn.transaction():
        conn.execute("DELETE FROM erp.journal_entries WHERE entry_id = %s", (entry_id,))


def _status(conn: psycopg.Connection, invoice_id: str) -> str:
    row = conn.execute(
        "SELECT status FROM erp.ar_open_items WHERE invoice_id = %s", (invoice_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


# Each step: ("pay", applied, written off) or ("credit", amount); then the status expected.
Step = tuple[str, str, str]


@pytest.mark.parametrize(
    ("steps", "statuses"),
    [
        ([("pay", "40.00", "0"), ("pay", "60.00", "0")], ["PARTIALLY_PAID", "PAID"]),
        ([("pay", "99.97", "0.03")], ["PAID"]),
        ([("credit", "30.00", "")], ["OPEN"]),
        ([("credit", "100.00", "")], ["CREDITED"]),
        ([("pay", "40.00", "0"), ("credit", "60.00", "")], ["PARTIALLY_PAID", "PAID"]),
        ([("credit", "60.00", ""), ("pay", "40.00", "0")], ["OPEN", "PAID"]),
    ],
    ids=[
        "paid-in-two",
        "short-paid-within-tolerance",
        "partly-credited",
        "fully-credited",
        "paid-then-credited",
        "credited-then-paid",
    ],
)
def test_reference_erp_ar_status_follows_the_amounts(
    conn: psycopg.Connection, steps: list[Step], statuses: list[str]
) -> None:
    erp = ReferenceErp(conn)
    customer = a_customer()
    customer_id = erp.create_customer(customer)
    item = posted_invoice(erp, customer.account_id, "100.00")
    assert _status(conn, item.invoice_id) == "OPEN"
    for (kind, amount, written_off), status in zip(steps, statuses, strict=True):
        if kind == "pay":
            payment = a_payment(
                customer_id,
                customer.account_id,
                item.invoice_id,
                amount,
                amount,
                written_off,
                status=PaymentStatus.PAID if status == "PAID" else PaymentStatus.PARTIALLY_PAID,
            )
            erp.apply_payment(payment, payment_journal(payment))
        else:
            money = Decimal(amount)
            erp.post_credit_memo(uid("CM"), item.invoice_id, money, credit_memo_journal(money))
        erp.flush()
        assert _status(conn, item.invoice_id) == status
