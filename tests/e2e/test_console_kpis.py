"""The console's KPI page in a real browser (Debian's Chromium) with a real finance-analytics app
(`finsync run finance-analytics`) counting events published to the real stack: a deal, two
invoices and a part payment of a legal entity of this run's own, picked in the page's selector,
its figures in the tables and drawn as bars; then the app stops and the page says what to run.
Screenshots go to artifacts/console/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from finsync.console import users
from finsync.contract.events import (
    Application,
    ApplicationKind,
    BillingPeriod,
    Event,
    InvoicePosted,
    JournalLine,
    OpportunityClosed,
    OpportunityLine,
    PaymentApplied,
    PaymentStatus,
)
from finsync.ops.kpis import AnalyticsUnavailable, fetch
from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from services.finance_analytics.reader import DEAD_LETTER_TOPICS, EVENT_TOPICS
from tests.support import ServiceProcess, commit_at_end, eventually, free_port, publish

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
RUN = uuid.uuid4().hex[:8].upper()
ENTITY = f"KPI-{RUN}"  # a legal entity of this run alone: its book holds nothing else
USER, PASSWORD = f"kpi-{RUN.lower()}", f"pw-{uuid.uuid4().hex}"
TODAY = datetime.now(UTC).date()
D = Decimal


def _envelope(correlation: str) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": datetime.now(UTC),
        "source": "erp",
        "correlation_id": correlation,
    }


def _line(account: str, debit: str = "0", credit: str = "0") -> JournalLine:
    return JournalLine(account_code=account, debit=D(debit), credit=D(credit))


def _invoice(number: int, total: str, booked: date, due: date) -> InvoicePosted:
    invoice_id = f"INV-{ENTITY}-{number}"
    return InvoicePosted(
        **_envelope(invoice_id),
        invoice_id=invoice_id,
        erp_document_id=f"ERP-{invoice_id}",
        journal_entry_id=f"JE-{invoice_id}",
        legal_entity=ENTITY,
        currency="EUR",
        journal_lines=[_line("1200", debit=total), _line("4000", credit=total)],
        posted_at=datetime.combine(booked, time(12), UTC),
        accounting_date=booked,
        due_on=due,
    )


def story() -> list[Event]:
    """Booked 2,500.00; billed 1,190.00 (due 10 days ago) and 500.00 (due in 25 days); 240.00
    received, 190.00 of it applied to the first invoice: open AR 1,500.00, unapplied 50.00."""
    deal_id = f"OPP-{ENTITY}"
    deal = OpportunityClosed(
        **{**_envelope(deal_id), "source": "crm"},
        opportunity_id=deal_id,
        account_id=f"ACC-{ENTITY}",
        closed_at=datetime.combine(TODAY - timedelta(days=45), time(16), UTC),
        currency="EUR",
        legal_entity=ENTITY,
        lines=[
            OpportunityLine(
                line_id="1", sku="ONBOARD", description="Onboarding", quantity=D(1),
                unit_price=D("2500.00"), billing_period=BillingPeriod.ONE_TIME,
                start_date=TODAY, term_months=1,
            )
        ],
        total_contract_value=D("2500.00"),
    )  # fmt: skip
    first = _invoice(1, "1190.00", TODAY - timedelta(days=40), TODAY - timedelta(days=10))
    second = _invoice(2, "500.00", TODAY - timedelta(days=5), TODAY + timedelta(days=25))
    payment_id = f"PAY-{ENTITY}"
    payment = PaymentApplied(
        **_envelope(payment_id),
        payment_id=payment_id,
        invoice_id=first.invoice_id,
        currency="EUR",
        applied_amount=D("190.00"),
        unapplied_amount=D("50.00"),
        invoice_open_after=D("1000.00"),
        status=PaymentStatus.PARTIALLY_PAID,
        journal_entry_id=f"JE-{payment_id}",
        journal_lines=[
            _line("1000", debit="240.00"),
            _line("1200", credit="190.00"),
            _line("2100", credit="50.00"),
        ],
        legal_entity=ENTITY,
        accounting_date=TODAY - timedelta(days=2),
        applications=[
            Application(
                invoice_id=first.invoice_id, applied_amount=D("190.00"),
                written_off_amount=D(0), invoice_open_after=D("1000.00"),
                kind=ApplicationKind.SETTLEMENT,
            )
        ],
    )  # fmt: skip
    return [deal, first, second, payment]


@pytest.fixture(scope="module")
def analytics_app(
    settings: Settings, serde: Serde, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, Settings]]:
    group = f"finance-analytics-kpi-page-{RUN.lower()}"
    # Counting from the ends of what the app reads: this run's events only, ready in seconds.
    commit_at_end(settings, group, [*EVENT_TOPICS, *DEAD_LETTER_TOPICS])
    ours = replace(settings, analytics_port=free_port())
    env = {"FINSYNC_ANALYTICS_PORT": str(ours.analytics_port), "FINSYNC_ANALYTICS_GROUP": group}
    app = ServiceProcess("finance-analytics", tmp_path_factory.mktemp("analytics"), env)
    app.start(wait=False)

    def counted() -> bool:
        assert app.running(), f"finance-analytics exited; see {app.log}"
        try:
            kpis = fetch(ours, 30)
        except AnalyticsUnavailable:
            return False
        rows = kpis.of(ENTITY, "EUR")
        return kpis.ready and bool(rows) and rows[-1].open_ar == D("1500.00")

    try:
        publish(settings, serde, story())
        eventually(counted, 60, "finance-analytics to count this run's events")
        yield app, ours
    finally:
        app.stop()


@pytest.fixture(scope="module")
def console_url(
    settings: Settings,
    analytics_app: tuple[ServiceProcess, Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    with db.connect(settings) as conn:
        users.add(conn, USER, PASSWORD, "viewer")
    port = free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    env = {**os.environ, "FINSYNC_ANALYTICS_PORT": str(analytics_app[1].analytics_port)}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "console", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            assert server.poll() is None, log.read_text()
            return False

    try:
        eventually(answers, 30, "the console to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)
        with db.connect(settings) as conn:
            conn.execute("DELETE FROM finsync.console_users WHERE username = %s", (USER,))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


def test_a_viewer_picks_a_legal_entity_and_sees_its_receivable(
    browser: Browser, console_url: str, analytics_app: tuple[ServiceProcess, Settings]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{console_url}/kpis")
    page.get_by_test_id("login-username").fill(USER)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("kpi-filter-form")).to_be_visible()
    expect(page.locator("nav a.active")).to_have_text("KPIs")

    page.get_by_test_id("kpi-entity").select_option(ENTITY)
    page.get_by_test_id("kpi-submit").click()
    expect(page.get_by_test_id("kpi-latest")).to_contain_text(f"{ENTITY} · EUR")
    expect(page.get_by_test_id("kpi-open-ar")).to_contain_text("1,500.00")
    expect(page.get_by_test_id("kpi-aging-0")).to_contain_text("500.00")  # due in 25 days
    expect(page.get_by_test_id("kpi-aging-1")).to_contain_text("1,000.00")  # 10 days ago
    expect(page.get_by_test_id("kpi-unapplied-cash")).to_contain_text("50.00")
    expect(page.get_by_test_id("kpi-bookings")).to_contain_text("2,500.00")
    expect(page.get_by_test_id("kpi-net-billings")).to_contain_text("1,690.00")
    expect(page.get_by_test_id("kpi-collections")).to_contain_text("190.00")
    assert page.get_by_test_id("kpi-flows-chart").locator("rect.bar").count() == 4
    aging = page.get_by_test_id("kpi-aging-chart")
    expect(aging).to_be_visible()
    assert aging.locator("rect.bar").count() > 0
    expect(page.get_by_test_id("kpi-aging-chart-legend")).to_contain_text("1-30")
    page.screenshot(path=str(ARTIFACTS / "kpis.png"), full_page=True)

    page.get_by_test_id("kpi-days").select_option("365")
    page.get_by_test_id("kpi-submit").click()
    expect(page.get_by_test_id("kpi-flows")).to_contain_text("per week")
    expect(page.get_by_test_id("kpi-open-ar")).to_contain_text("1,500.00")
    page.screenshot(path=str(ARTIFACTS / "kpis-year.png"), full_page=True)

    analytics_app[0].stop()  # the page says what to run, and fails no other way
    page.reload()
    expect(page.get_by_test_id("kpis-unavailable")).to_contain_text("finsync run finance-analytics")
    expect(page.get_by_test_id("nav")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "kpis-unavailable.png"), full_page=True)
    page.close()
