"""Input limits: a record over a limit is refused with the field and the limit named."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from finsync.contract import limits
from finsync.runtime import db
from finsync.scenario import documents


def invoice(**changes: object) -> object:
    return documents.invoice(random.Random(1), 1).model_copy(update=changes)


def line(**changes: object) -> object:
    inv = documents.invoice(random.Random(1), 1)
    return inv.model_copy(update={"lines": [inv.lines[0].model_copy(update=changes)]})


def test_a_valid_document_is_within_every_limit() -> None:
    assert limits.violations(documents.invoice(random.Random(1), 1)) == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (invoice(invoice_id="INV-\x00-1"), "invoice_id has control character U+0000 at position 4"),
        (invoice(invoice_id="I" * 6000), "invoice_id is 6000 characters long; the limit is 200"),
        (invoice(account_id="ACC\n1"), "account_id has control character U+000A"),
        (invoice(source="crm\x85"), "source has control character U+0085"),
        (line(description="x" * 2001), "lines[0].description is 2001 characters long"),
        (line(description="bad \x00 text"), "lines[0].description has control character U+0000"),
        (line(amount=Decimal("1E+15")), "lines[0].amount = 1E+15 does not fit decimal(18,4)"),
        (invoice(total=Decimal("0.00001")), "total = 0.00001 does not fit decimal(18,4)"),
        # 30 digits: more than a default decimal context holds, so rounding must not hide it.
        (invoice(total=Decimal("1." + "0" * 28 + "1")), "does not fit decimal(18,4)"),
        (invoice(total=Decimal("-99999999999999.99995")), "does not fit decimal(18,4)"),
        (invoice(total=Decimal("-1E+14")), "does not fit decimal(18,4)"),
        (invoice(total=Decimal("sNaN")), "total is not a finite amount"),
        # A writer schema of a huge scale reads as this; refused at once, not in hours.
        (invoice(total=Decimal("1E-999999999")), "does not fit decimal(18,4)"),
        (invoice(total=Decimal("-0.00009")), "does not fit decimal(18,4)"),
        (invoice(issued_on=date(9999, 12, 31)), "issued_on = 9999-12-31 is outside"),
        (invoice(due_on=date(1, 1, 1)), "due_on = 0001-01-01 is outside"),
    ],
)
def test_a_value_over_a_limit_is_named_with_the_limit(event: object, reason: str) -> None:
    found = limits.violations(event)  # type: ignore[arg-type]
    assert len(found) == 1 and reason in found[0], found


def test_amounts_at_the_edges_of_decimal_18_4_fit() -> None:
    for amount in (
        "99999999999999.9999",
        "-99999999999999.9999",
        "1.50000000",
        "1E+13",
        "-0",
        "0E-999999999",
        "0.0001",
    ):
        assert limits.violations(invoice(total=Decimal(amount))) == [], amount  # type: ignore[arg-type]


def test_free_text_may_carry_line_breaks_and_ids_may_not() -> None:
    assert limits.violations(line(description="two\nlines\tand a tab")) == []  # type: ignore[arg-type]
    assert limits.violations(line(sku="SKU\t1"))  # type: ignore[arg-type]


def test_a_document_with_too_many_lines_is_refused() -> None:
    inv = documents.invoice(random.Random(1), 1)
    many = inv.model_copy(update={"lines": [inv.lines[0]] * (limits.MAX_LINES + 1)})
    assert limits.violations(many) == [
        f"lines has {limits.MAX_LINES + 1} entries; the limit is 1000"
    ]


def test_only_database_faults_are_outages_not_faults_one_record_causes() -> None:
    assert db.is_outage(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert db.is_outage(psycopg.errors.AdminShutdown())
    assert db.is_outage(psycopg.errors.TooManyConnections())
    assert not db.is_outage(psycopg.errors.ProgramLimitExceeded("index row size 6072 exceeds"))
    assert not db.is_outage(psycopg.errors.QueryCanceled("statement timeout"))
    assert not db.is_outage(psycopg.errors.UntranslatableCharacter())
    assert not db.is_outage(ValueError("a bug"))
