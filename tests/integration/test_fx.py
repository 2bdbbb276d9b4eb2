"""Functional currency on the real stack: the rates table and its CLI, journals converted by
the reference ERP, the published lines, and the trial balance in functional terms."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from psycopg.errors import CheckViolation

from finsync.books import functional, ledger
from finsync.domain.accounting import Journal, credit, debit
from finsync.errors import DependencyNotReady
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.integration.port_support import uid
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, publish

pytestmark = pytest.mark.integration

FAR = date(2300, 1, 1)  # rates of these tests: later than any other journal's date


def finsync(*args: str) -> subprocess.CompletedProcess[str]:
    wide = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", *args], capture_output=True, text=True, env=wide
    )


def _rates(conn: psycopg.Connection, *rows: tuple[date, str, str, str]) -> None:
    for on, from_, to, rate in rows:
        conn.execute(
            "INSERT INTO erp.fx_rates (rate_date, from_currency, to_currency, rate) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (from_currency, to_currency, rate_date) "
            "DO UPDATE SET rate = excluded.rate",
            (on, from_, to, D(rate)),
        )


def _journal(entity: str, currency: str, on: date, *lines: object) -> Journal:
    return Journal(uid("fx-test"), entity, currency, "fx test", tuple(lines), on)  # type: ignore[arg-type]


def _booked(conn: psycopg.Connection, entry_id: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT account_code, debit, credit, functional_debit, functional_credit, rate "
        "FROM erp.journal_lines WHERE entry_id = %s ORDER BY line_no",
        (entry_id,),
    ).fetchall()


def test_a_journal_in_a_foreign_currency_books_at_the_rate_of_its_date(
    conn: psycopg.Connection,
) -> None:
    _rates(conn, (FAR, "EUR", "USD", "1.25"), (FAR + timedelta(days=31), "EUR", "USD", "1.5"))
    erp = ReferenceErp(conn)
    on = FAR + timedelta(days=19)
    journal = _journal("ACME-US", "EUR", on, debit("1200", D("10.01")), credit("4000", D("10.01")))
    posted = erp.post_journal(journal)
    erp.flush()
    assert posted.functional_currency == "USD"
    assert [(x.functional_debit, x.functional_credit, x.rate) for x in posted.lines] == [
        (D("12.51"), D(0), D("1.25")),  # 12.5125
        (D(0), D("12.51"), D("1.25")),
    ]
    assert _booked(conn, posted.journal_entry_id) == [
        ("1200", D("10.0100"), D(0), D("12.5100"), D(0), D("1.2500000000")),
        ("4000", D(0), D("10.0100"), D(0), D("12.5100"), D("1.2500000000")),
    ]
    entry = conn.execute(
        "SELECT functional_currency, rate_from, rate_to, rate_date FROM erp.journal_entries "
        "WHERE entry_id = %s",
        (posted.journal_entry_id,),
    ).fetchone()
    assert entry == ("USD", "EUR", "USD", FAR)  # the loaded rate it used


def test_only_the_other_direction_loaded_books_at_its_inverse(conn: psycopg.Connection) -> None:
    _rates(conn, (FAR, "EUR", "USD", "1.25"))
    erp = ReferenceErp(conn)
    lines = (debit("1000", D("100.00")), credit("4000", D("33.33")), credit("4000", D("66.67")))
    posted = erp.post_journal(_journal("ACME-DE", "USD", FAR + timedelta(days=3), *lines))
    erp.flush()
    assert _booked(conn, posted.journal_entry_id) == [
        ("1000", D("100.0000"), D(0), D("80.0000"), D(0), D("0.8000000000")),
        ("4000", D(0), D("33.3300"), D(0), D("26.6600"), D("0.8000000000")),  # 26.664
        ("4000", D(0), D("66.6700"), D(0), D("53.3400"), D("0.8000000000")),  # 53.336
    ]


def test_a_journal_with_no_rate_by_its_date_waits_for_one(conn: psycopg.Connection) -> None:
    erp = ReferenceErp(conn)
    journal = _journal("ACME-US", "SEK", FAR, debit("1000", D(5)), credit("4000", D(5)))
    with pytest.raises(DependencyNotReady) as caught:
        erp.post_journal(journal)
    assert str(caught.value) == (
        "no FX rate SEK->USD (or USD->SEK) on or before 2300-01-01: load one with "
        "`finsync erp rates load FILE`"
    )


def test_a_functional_imbalance_is_refused_and_a_planted_one_breaks_the_trial_balance(
    conn: psycopg.Connection,
) -> None:
    entity = uid("FX")  # not in erp.legal_entities: books in the journal's own currency
    entry = uid("JE-FX")
    conn.execute(
        "INSERT INTO erp.journal_entries (entry_id, idempotency_key, legal_entity, currency, "
        "description) VALUES (%s, %s, %s, 'EUR', 'fx test')",
        (entry, f"key-{entry}", entity),
    )
    insert = (
        "INSERT INTO erp.journal_lines (entry_id, line_no, account_code, debit, credit, "
        "functional_debit, functional_credit, rate) VALUES "
        "(%(e)s, 1, '1000', 10, 0, 10, 0, 1), (%(e)s, 2, '4000', 0, 10, 0, 9.99, 1)"
    )
    refused = pytest.raises(CheckViolation, match="not balanced in its functional currency")
    with refused, conn.transaction():
        conn.execute(insert, {"e": entry})
    # Planted around the balance trigger, as a break would be.
    conn.execute("ALTER TABLE erp.journal_lines DISABLE TRIGGER journal_balanced")
    conn.execute(insert, {"e": entry})
    conn.execute("ALTER TABLE erp.journal_lines ENABLE TRIGGER journal_balanced")
    found = ledger.trial_balance(conn, {"entity": entity, "since": None})
    assert [(f.check, f.scope, f.detail, f.documents) for f in found] == [
        (
            "trial-balance",
            f"{entity} functional EUR",
            "functional debits exceed credits by 0.01 EUR",
            (f"key-{entry}",),
        )
    ]
    assert functional.totals(conn, entity) == [(entity, "EUR", D(10), D("9.99"))]


def _loaded(settings: Settings, first: date, last: date | None = None) -> list[tuple[object, ...]]:
    with db.connect(settings) as conn:
        return conn.execute(
            "SELECT to_currency, rate_date, rate FROM erp.fx_rates WHERE from_currency = 'CHF' "
            "AND rate_date BETWEEN %s AND %s ORDER BY 1",
            (first, last or first),
        ).fetchall()


def test_the_rates_cli_loads_lists_and_refuses_what_it_must(
    settings: Settings, tmp_path: Path
) -> None:
    day = date(2200, 1, 1) + timedelta(days=random.randrange(36000))
    good = tmp_path / "rates.csv"
    good.write_text(f"date,from,to,rate\n{day},CHF,USD,1.1234\n{day},CHF,NOK,12.5\n")
    dry = finsync("erp", "rates", "load", str(good), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would load" in dry.stdout and "2 added" in dry.stdout
    assert _loaded(settings, day) == []  # the dry run changed nothing
    done = finsync("erp", "rates", "load", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 added, 0 changed, 0 unchanged" in done.stdout
    listed = finsync("erp", "rates", "list", "--from", "USD", "--to", "CHF", "--on", str(day))
    assert "0.890154887 " in listed.stdout  # 1 / 1.1234 = 0.89015488695…, inverted

    bad = tmp_path / "bad.csv"
    bad.write_text(f"date,from,to,rate\n{day},CHF,USD,0\nyesterday,CHF,XYZ,1\n")
    refused = finsync("erp", "rates", "load", str(bad))
    assert refused.returncode == 1
    assert "line 2: rate 0 must be a positive number" in refused.stdout
    assert "line 3: date 'yesterday' is not a date (YYYY-MM-DD)" in refused.stdout
    assert "line 3: to currency 'XYZ' is not one finsync books" in refused.stdout

    # A journal converted at the CHF->USD rate: that rate may not change any more.
    with db.connect(settings) as conn:
        erp = ReferenceErp(conn)
        lines = (debit("1000", D("2.00")), credit("6100", D("2.00")))
        journal = _journal("ACME-US", "CHF", day + timedelta(days=1), *lines)
        posted = erp.post_journal(journal)
        erp.flush()
        conn.commit()
    assert [x.rate for x in posted.lines] == [D("1.1234")] * 2
    changed = tmp_path / "changed.csv"
    later = day + timedelta(days=2)
    changed.write_text(
        f"date,from,to,rate\n{later},CHF,USD,1.2\n{day},CHF,NOK,12.6\n{day},CHF,USD,1.3\n"
    )
    refused = finsync("erp", "rates", "load", str(changed))
    assert refused.returncode == 1, refused.stdout
    assert (
        f"CHF->USD on {day} is 1.1234, which 1 posted journal(s) used (e.g. {journal.key}): it "
        "cannot become 1.3" in refused.stdout
    )
    assert _loaded(settings, day, later) == [  # all or nothing
        ("NOK", day, D("12.5")),
        ("USD", day, D("1.1234")),
    ]
    unused = tmp_path / "unused.csv"  # the rate no journal used may change
    unused.write_text(f"date,from,to,rate\n{day},CHF,NOK,12.6\n{day},CHF,USD,1.1234\n")
    done = finsync("erp", "rates", "load", str(unused))
    assert done.returncode == 0, done.stdout
    assert "1 changed, 1 unchanged" in done.stdout


def test_a_posted_invoice_publishes_its_lines_with_functional_amounts(
    settings: Settings, serde: Serde, tmp_path: Path, rng: random.Random
) -> None:
    poster = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    try:
        tail = TopicTail(settings, "erp.invoice-posted")
        invoice = documents.invoice(rng, 1)
        publish(settings, serde, [invoice])
        records = eventually(
            lambda: [r for r in tail.poll(0.5) if r.key_text == invoice.invoice_id],
            30,
            "erp.invoice-posted",
        )
    finally:
        assert poster.stop() == 0
    posted = serde.decode("erp.invoice-posted", records[0].value)
    functional = {"ACME-US": "USD", "ACME-DE": "EUR", "ACME-UK": "GBP", "ACME-JP": "JPY"}
    assert posted.functional_currency == functional[invoice.legal_entity]  # type: ignore[attr-defined]
    lines = posted.journal_lines  # type: ignore[attr-defined]
    assert lines and all(
        (x.functional_debit, x.functional_credit, x.rate) == (x.debit, x.credit, 1) for x in lines
    )
