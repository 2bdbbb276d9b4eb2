"""Revenue recognition on the real stack: invoices posted by invoice-poster defer their service
lines, `finsync erp recognize` releases ended months once, and credit memos reverse what the
invoice line posted — recognised part from revenue, deferred part from deferred revenue.

Each test books under a legal entity of its own, so balances and runs are its own.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.contract.events import CreditMemoIssued, InvoiceIssued, InvoiceLine
from finsync.domain.accounting import DEFERRED_REVENUE, REVENUE
from finsync.reference.erp import recognition
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.invoice_poster.handler import post_credit_memo
from tests.support import FAST_RETRIES, ServiceProcess, TopicTail, eventually, journals, publish

pytestmark = pytest.mark.integration

D = Decimal
YEAR = (date(2026, 1, 1), date(2026, 12, 31))  # 1,200.00 over it: Jan 101.92, Feb 92.05, ...


@pytest.fixture
def entity() -> str:
    return f"REV-{uuid.uuid4().hex[:8].upper()}"


@pytest.fixture
def poster(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    yield service
    if service.proc and service.proc.poll() is None:
        assert service.stop() == 0


def envelope() -> dict[str, object]:
    return dict(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="billing",
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
    )


def service_line(line_id: str, amount: str, period: tuple[date, date] | None) -> InvoiceLine:
    return InvoiceLine(
        line_id=line_id,
        description="Platform seats",
        sku="PLAT-SEAT",
        amount=D(amount),
        tax_amount=D(0),
        service_period_start=period[0] if period else None,
        service_period_end=period[1] if period else None,
    )


def an_invoice(entity: str, issued_on: date, *lines: InvoiceLine) -> InvoiceIssued:
    total = sum((x.amount for x in lines), D(0))
    return InvoiceIssued(
        **envelope(),  # type: ignore[arg-type]
        invoice_id=f"INV-{entity}-{uuid.uuid4().hex[:8]}",
        invoice_number=f"{entity}-2026-000001",
        account_id=f"ACC-{entity}",
        legal_entity=entity,
        currency="EUR",
        issued_on=issued_on,
        due_on=issued_on,
        lines=list(lines),
        subtotal=total,
        tax_total=D(0),
        total=total,
    )


def a_memo(invoice: InvoiceIssued, line_id: str, amount: str, issued_on: date) -> CreditMemoIssued:
    [line] = [x for x in invoice.lines if x.line_id == line_id]
    credited = line.model_copy(update={"amount": D(amount)})
    return CreditMemoIssued(
        **envelope(),  # type: ignore[arg-type]
        credit_memo_id=f"CM-{uuid.uuid4().hex[:10]}",
        invoice_id=invoice.invoice_id,
        account_id=invoice.account_id,
        legal_entity=invoice.legal_entity,
        currency=invoice.currency,
        issued_on=issued_on,
        lines=[credited],
        subtotal=D(amount),
        tax_total=D(0),
        total=D(amount),
    )


def balance(settings: Settings, entity: str, account: str) -> Decimal:
    """Credit balance of an account in the entity's books."""
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(l.credit - l.debit), 0) FROM erp.journal_lines l "
            "JOIN erp.journal_entries e USING (entry_id) "
            "WHERE e.legal_entity = %s AND l.account_code = %s",
            (entity, account),
        ).fetchone()
    assert row is not None
    return Decimal(row[0])


def unreleased(settings: Settings, entity: str) -> Decimal:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(amount - cancelled_amount), 0) FROM erp.revenue_schedules "
            "WHERE legal_entity = %s AND recognized_entry_id IS NULL",
            (entity,),
        ).fetchone()
    assert row is not None
    return Decimal(row[0])


def recognition_journals(settings: Settings, entity: str) -> dict[str, tuple[Decimal, date]]:
    """Idempotency key -> (amount released, accounting date) of the entity's recognitions."""
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT e.idempotency_key, sum(l.debit), e.accounting_date "
            "FROM erp.journal_entries e JOIN erp.journal_lines l USING (entry_id) "
            "WHERE e.legal_entity = %s AND e.idempotency_key LIKE 'recognition:%%' "
            "GROUP BY 1, 3",
            (entity,),
        ).fetchall()
    return {k: (Decimal(a), d) for k, a, d in rows}


def runs(settings: Settings, entity: str) -> dict[str, Decimal]:
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT period, amount FROM erp.recognition_runs WHERE legal_entity = %s",
            (entity,),
        ).fetchall()
    return {f"{p:%Y-%m}": Decimal(a) for p, a in rows}


def post(settings: Settings, serde: Serde, *docs: InvoiceIssued | CreditMemoIssued) -> None:
    publish(settings, serde, list(docs))
    for d in docs:
        key = (
            f"invoice:{d.invoice_id}"
            if isinstance(d, InvoiceIssued)
            else f"credit-memo:{d.credit_memo_id}"
        )
        eventually(lambda k=key: journals(settings, k) == 1, 30, f"the posting of {key}")


def test_service_lines_are_deferred_and_released_month_by_month_once(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    annual = an_invoice(entity, date(2026, 1, 1), service_line("1", "1200.00", YEAR))
    one_time = an_invoice(entity, date(2026, 1, 10), service_line("1", "500.00", None))
    post(settings, serde, annual, one_time)
    assert balance(settings, entity, DEFERRED_REVENUE) == D("1200.00")
    assert balance(settings, entity, REVENUE) == D("500.00")
    assert unreleased(settings, entity) == D("1200.00")

    tail = TopicTail(settings, "erp.revenue-recognized")
    result = recognition.recognize(settings, date(2026, 3, 31), entity)
    assert [(f"{m.period:%Y-%m}", m.amount, m.rows) for m in result.months] == [
        ("2026-01", D("101.92"), 1),
        ("2026-02", D("92.05"), 1),
        ("2026-03", D("101.92"), 1),
    ]
    key = f"recognition:{entity}:EUR"
    assert recognition_journals(settings, entity) == {
        f"{key}:2026-01": (D("101.92"), date(2026, 1, 31)),
        f"{key}:2026-02": (D("92.05"), date(2026, 2, 28)),
        f"{key}:2026-03": (D("101.92"), date(2026, 3, 31)),
    }
    assert (
        balance(settings, entity, DEFERRED_REVENUE) == D("904.11") == unreleased(settings, entity)
    )
    assert balance(settings, entity, REVENUE) == D("795.89")  # 500.00 + 295.89
    assert runs(settings, entity) == {
        "2026-01": D("101.92"),
        "2026-02": D("92.05"),
        "2026-03": D("101.92"),
    }

    # Again, for the same date and a date within April: nothing new.
    again = recognition.recognize(settings, date(2026, 3, 31), entity)
    later = recognition.recognize(settings, date(2026, 4, 29), entity)
    assert [m.released for m in again.months + later.months] == [False, False]
    assert len(recognition_journals(settings, entity)) == 3
    assert balance(settings, entity, REVENUE) == D("795.89")

    def mine() -> list[object]:
        return [r for r in tail.poll(0.5) if r.key_text == entity]

    records = eventually(lambda: len(mine()) >= 3 and mine(), 30, "erp.revenue-recognized")
    tail.close()
    published = [serde.decode("erp.revenue-recognized", r.value) for r in records]
    assert [(e.period, e.amount) for e in published] == [  # type: ignore[attr-defined]
        (date(2026, 1, 1), D("101.92")),
        (date(2026, 2, 1), D("92.05")),
        (date(2026, 3, 1), D("101.92")),
    ]
    january = published[0]
    assert [(x.account_code, x.debit, x.credit) for x in january.lines] == [  # type: ignore[attr-defined]
        (DEFERRED_REVENUE, D("101.92"), D(0)),
        (REVENUE, D(0), D("101.92")),
    ]
    assert january.accounting_date == date(2026, 1, 31)  # type: ignore[attr-defined]


def test_a_credit_memo_a_month_later_reverses_the_recognised_and_the_deferred_part(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    whole = an_invoice(entity, date(2026, 1, 1), service_line("1", "1200.00", YEAR))
    part = an_invoice(entity, date(2026, 1, 1), service_line("1", "1200.00", YEAR))
    post(settings, serde, whole, part)
    recognition.recognize(settings, date(2026, 1, 31), entity)  # 2 x 101.92 released

    whole_memo = a_memo(whole, "1", "1200.00", date(2026, 2, 10))
    part_memo = a_memo(part, "1", "300.00", date(2026, 2, 10))
    post(settings, serde, whole_memo, part_memo)
    with db.connect(settings) as conn:
        memo_lines = dict(
            conn.execute(
                "SELECT l.account_code, l.debit - l.credit FROM erp.journal_lines l "
                "JOIN erp.journal_entries e USING (entry_id) WHERE e.idempotency_key = %s",
                (f"credit-memo:{whole_memo.credit_memo_id}",),
            ).fetchall()
        )
        deferred_by_invoice = dict(
            conn.execute(
                "SELECT invoice_id, sum(amount - cancelled_amount) FROM erp.revenue_schedules "
                "WHERE legal_entity = %s AND recognized_entry_id IS NULL GROUP BY 1",
                (entity,),
            ).fetchall()
        )
    assert memo_lines == {
        REVENUE: D("101.92"),
        DEFERRED_REVENUE: D("1098.08"),
        "1200": D("-1200.00"),
    }
    # The whole-line memo left nothing deferred of its line; 300 of the other took 274.52.
    assert deferred_by_invoice == {whole.invoice_id: D(0), part.invoice_id: D("823.56")}
    assert balance(settings, entity, DEFERRED_REVENUE) == D("823.56")
    assert balance(settings, entity, REVENUE) == D("76.44")  # 203.84 - 101.92 - 25.48

    # The rest of the year: the credited line releases nothing, the other its remaining 3/4.
    recognition.recognize(settings, date(2026, 12, 31), entity)
    assert balance(settings, entity, DEFERRED_REVENUE) == D(0) == unreleased(settings, entity)
    assert balance(settings, entity, REVENUE) == D("900.00")  # what is left invoiced
    assert runs(settings, entity)["2026-02"] == D("69.04")  # 92.05 less 23.01 cancelled
    assert len(runs(settings, entity)) == 12


def test_a_credit_memo_holds_off_a_recognition_run_until_it_commits(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    invoice = an_invoice(entity, date(2026, 1, 1), service_line("1", "1200.00", YEAR))
    post(settings, serde, invoice)
    memo = a_memo(invoice, "1", "1200.00", date(2026, 1, 20))
    finished: list[recognition.RecognitionResult] = []
    with db.connect(settings) as conn:
        erp = ReferenceErp(conn)
        post_credit_memo(memo, erp)  # reads the line's months FOR UPDATE
        erp.flush()
        run = threading.Thread(
            target=lambda: finished.append(recognition.recognize(settings, YEAR[1], entity))
        )
        run.start()
        time.sleep(2)
        assert run.is_alive()  # waiting for the memo's locks, not releasing January
        conn.commit()
    run.join(30)
    assert finished and not any(m.released for m in finished[0].months)
    assert balance(settings, entity, DEFERRED_REVENUE) == D(0)
    assert balance(settings, entity, REVENUE) == D(0)
    assert recognition_journals(settings, entity) == {}


def test_two_runs_at_once_release_each_month_once(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    invoices = [
        an_invoice(entity, date(2026, 1, 1), service_line("1", "1200.00", YEAR)) for _ in range(5)
    ]
    post(settings, serde, *invoices)
    command = [sys.executable, "-m", "finsync.cli.main", "erp", "recognize"]
    args = ["--through", "2026-06-30", "--entity", entity]
    procs = [
        subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    released = recognition_journals(settings, entity)
    assert sorted(k[-7:] for k in released) == [f"2026-{m:02d}" for m in range(1, 7)]
    assert sum(a for a, _ in released.values()) == 5 * D("595.07")  # Jan-Jun of 1,200.00
    assert balance(settings, entity, DEFERRED_REVENUE) == 5 * D("604.93")
    lines = [line for out in outputs for line in out.splitlines() if line.startswith(entity)]
    assert sum("released" in line for line in lines) == 6  # each month by one of the two
    assert all("journal(s) posted" in out for out in outputs)


def test_late_rows_of_a_released_month_are_released_under_a_key_of_their_own(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    january = (date(2026, 1, 1), date(2026, 1, 31))
    post(settings, serde, an_invoice(entity, date(2026, 1, 1), service_line("1", "31.00", january)))
    recognition.recognize(settings, date(2026, 1, 31), entity)
    # Billed in arrears after January was released.
    post(settings, serde, an_invoice(entity, date(2026, 2, 3), service_line("1", "62.00", january)))
    recognition.recognize(settings, date(2026, 2, 3), entity)
    key = f"recognition:{entity}:EUR:2026-01"
    assert recognition_journals(settings, entity) == {
        key: (D("31.00"), date(2026, 1, 31)),
        f"{key}:2": (D("62.00"), date(2026, 1, 31)),
    }
    assert runs(settings, entity) == {"2026-01": D("93.00")}
    assert balance(settings, entity, DEFERRED_REVENUE) == D(0)


def test_a_run_for_an_entity_records_its_month_even_with_nothing_deferred(
    settings: Settings, serde: Serde, poster: ServiceProcess, entity: str
) -> None:
    post(settings, serde, an_invoice(entity, date(2026, 3, 5), service_line("1", "80.00", None)))
    result = recognition.recognize(settings, date(2026, 3, 31), entity)
    assert [(m.legal_entity, m.period, m.released) for m in result.months] == [
        (entity, date(2026, 3, 1), False)
    ]
    assert runs(settings, entity) == {"2026-03": D(0)}
