"""The reference billing system's invoice run: each subscription period billed once, published."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from finsync.contract.events import BillingPeriod, InvoiceIssued
from finsync.ports.billing import BillingAccount, NewSubscription, Phase
from finsync.reference.billing import jobs as billing_jobs
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import TopicTail

pytestmark = pytest.mark.integration


def _subscription(settings: Settings) -> str:
    """A DE customer's deal: 10 seats monthly from 31 Aug for a year, onboarding once, and an
    annual add-on from 30 Sep."""
    opportunity = f"OPP-RUN-{uuid.uuid4().hex[:8]}"
    with db.connect(settings) as conn:
        billing = ReferenceBilling(conn)
        account = billing.create_account(
            BillingAccount(f"ACC-RUN-{uuid.uuid4().hex[:8]}", "Kestrel Foods GmbH", "DE", "EUR",
                           "ACME-DE", None, None)
        )  # fmt: skip
        billing.create_subscription(
            NewSubscription(
                opportunity_id=opportunity,
                account_id="ACC-RUN",
                billing_account_id=account,
                legal_entity="ACME-DE",
                currency="EUR",
                correlation_id=f"o2c-{opportunity}",
                phases=(
                    Phase("1", "PLAT-SEAT", "Platform seat", Decimal(10), Decimal("45.08"),
                          BillingPeriod.MONTHLY, date(2026, 8, 31), date(2027, 8, 30)),
                    Phase("2", "ONBOARDING", "Onboarding", Decimal(1), Decimal("2300.00"),
                          BillingPeriod.ONE_TIME, date(2026, 8, 31), date(2026, 8, 31)),
                    Phase("3", "ANALYTICS", "Analytics add-on", Decimal(1), Decimal("1104.00"),
                          BillingPeriod.ANNUAL, date(2026, 9, 30), date(2027, 9, 29)),
                ),
            )
        )  # fmt: skip
        conn.commit()
    return opportunity


def test_each_period_is_invoiced_once_however_often_and_concurrently_the_run_runs(
    settings: Settings, serde: Serde
) -> None:
    opportunity = _subscription(settings)
    tail = TopicTail(settings, InvoiceIssued.TOPIC)
    try:
        runs = [
            threading.Thread(target=billing_jobs.run_invoices, args=(settings, date(2026, 11, 30)))
            for _ in range(2)
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join(120)
        billing_jobs.run_invoices(settings, date(2026, 11, 30))  # and once more

        mine = f"INV-{opportunity}-"
        published: Counter[str] = Counter()
        invoices: dict[str, InvoiceIssued] = {}
        for record in tail.poll(5):
            if (record.key_text or "").startswith(mine):
                event = serde.decode(InvoiceIssued.TOPIC, record.value)
                assert isinstance(event, InvoiceIssued)
                published[event.invoice_id] += 1
                invoices[event.invoice_id] = event
    finally:
        tail.close()

    # Billed in advance, each period counted from the start date: 31 Aug (seats + onboarding),
    # 30 Sep (seats, the 31st falling back to the month's last day, + annual add-on), 31 Oct
    # (seats), 30 Nov (seats).
    days = ["20260831", "20260930", "20261031", "20261130"]
    assert published == Counter({f"{mine}{d}": 1 for d in days})
    first, second = invoices[f"{mine}20260831"], invoices[f"{mine}20260930"]
    assert [x.sku for x in first.lines] == ["PLAT-SEAT", "ONBOARDING"]
    assert [x.sku for x in second.lines] == ["PLAT-SEAT", "ANALYTICS"]
    assert first.subtotal == Decimal("2750.80") and first.tax_total == Decimal("522.65")
    assert first.total == first.subtotal + first.tax_total
    assert first.due_on == date(2026, 9, 30) and first.correlation_id == f"o2c-{opportunity}"
    seats = first.lines[0]
    assert (seats.service_period_start, seats.service_period_end) == (
        date(2026, 8, 31),
        date(2026, 9, 29),
    )
    assert first.lines[1].service_period_end is None  # one-time: nothing to defer
    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM billing.invoices WHERE invoice_id LIKE %s", (f"{mine}%",)
        ).fetchone()
    assert rows == (4,)


def test_the_cli_reports_what_the_run_issued(settings: Settings) -> None:
    _subscription(settings)
    done = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "billing", "run-invoices", "--as-of",
         "2026-09-15"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "invoice run as of 2026-09-15" in done.stdout
    assert "invoice(s) issued" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", "billing", "run-invoices", "--as-of",
         "2026-09-15"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "0 invoice(s) issued" in again.stdout, again.stdout + again.stderr
