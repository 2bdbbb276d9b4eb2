"""The ops console in a real browser (Debian's Chromium, driven by Playwright) against the real
stack: sign in, find a dead letter, replay it dry and then for real and see it resolved, trace
an invoice, and a viewer who cannot replay. Every page is kept as a screenshot in
artifacts/console/ for whoever reads the run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from finsync.contract.events import OpportunityClosed, OpportunityLine
from finsync.reference.billing import jobs as billing_jobs
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import (
    FAST_RETRIES,
    ServiceProcess,
    crm_account,
    eventually,
    free_port,
    publish,
    scalar,
)

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
OPERATOR, VIEWER = f"op-{uuid.uuid4().hex[:6]}", f"view-{uuid.uuid4().hex[:6]}"
PASSWORD = f"pw-{uuid.uuid4().hex}"  # a test's own, on stdin: never argv
START = date(1999, 6, 1)  # an invoice run as of this day bills this module's deal alone


def opportunity(account_id: str) -> OpportunityClosed:
    opportunity_id = f"OPP-CON-{uuid.uuid4().hex[:10]}"
    line = OpportunityLine(
        line_id="1", sku="ONBOARD", description="Onboarding", quantity=Decimal(1),
        unit_price=Decimal("2500.00"), billing_period="ONE_TIME", start_date=START, term_months=1,
    )  # fmt: skip
    return OpportunityClosed(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="crm",
        correlation_id=f"deal-{opportunity_id}",
        opportunity_id=opportunity_id,
        account_id=account_id,
        closed_at=datetime(1999, 5, 20, 16, tzinfo=UTC),
        currency="EUR",
        legal_entity="ACME-DE",
        lines=[line],
        total_contract_value=Decimal("2500.00"),
    )


def _finsync(*args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", *args],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def console_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for name, role in ((OPERATOR, "operator"), (VIEWER, "viewer")):
        _finsync("console", "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    port = free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "console", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            assert server.poll() is None, log.read_text()
            return False

    try:
        eventually(answers, 30, "the console to listen")
        yield url
    finally:
        server.terminate()
        server.wait(10)


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


@pytest.fixture(scope="module")
def story(
    settings: Settings, serde: Serde, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A deal closed for an account the CRM had not sent yet: a dead letter once its retries
    run out. Then the account arrives, so a replay can take effect."""
    logs = tmp_path_factory.mktemp("console-services")
    names = ("account-sync", "subscription-activator", "invoice-poster")
    running = [ServiceProcess(n, logs, FAST_RETRIES).start(wait=False) for n in names]
    try:
        for service in running:
            service.wait_log("started", 90)
        account_id = f"ACC-CON-{uuid.uuid4().hex[:10]}"
        deal = opportunity(account_id)
        publish(settings, serde, [deal])
        eventually(
            lambda: scalar(
                settings,
                "SELECT count(*) FROM finsync.dead_letters WHERE message_key = %s",
                deal.opportunity_id,
            ),
            60,
            "the deal's dead letter",
        )
        publish(settings, serde, [crm_account(account_id, 1, f"Console {account_id} GmbH")])
        eventually(
            lambda: scalar(
                settings,
                "SELECT count(*) FROM finsync.account_xref WHERE account_id = %s",
                account_id,
            ),
            60,
            "the account to be synced",
        )
        yield {"account": account_id, "opportunity": deal.opportunity_id}
    finally:
        for service in running:
            service.stop()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(browser: Browser, url: str, user: str) -> Page:
    page = browser.new_page()
    page.goto(f"{url}/exceptions")  # any page sends a stranger to the sign-in form
    expect(page.get_by_test_id("login-form")).to_be_visible()
    _shot(page, "login")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("nav-user")).to_contain_text(user)
    return page


def test_an_operator_finds_a_dead_letter_replays_it_and_sees_it_resolved(
    browser: Browser, console_url: str, story: dict[str, str], settings: Settings
) -> None:
    page = _sign_in(browser, console_url, OPERATOR)
    page.goto(console_url)
    expect(page.get_by_test_id("service-subscription-activator")).to_be_visible()
    _shot(page, "overview")

    page.goto(f"{console_url}/exceptions")
    page.get_by_test_id("filter-key").fill(story["opportunity"])
    page.get_by_test_id("filter-submit").click()
    rows = page.get_by_test_id("letter-row")
    expect(rows).to_have_count(1)
    _shot(page, "exceptions")
    rows.first.get_by_test_id("letter-link").click()
    expect(page.get_by_test_id("status-badge").first).to_have_text("open")
    expect(page.get_by_test_id("reason")).to_contain_text("not synced to billing yet")
    _shot(page, "dead-letter")

    page.get_by_test_id("replay-dry-run").click()
    expect(page.get_by_test_id("dry-run-count")).to_have_text("1")
    _shot(page, "replay-dry-run")
    assert (
        scalar(
            settings,
            "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = %s",
            story["opportunity"],
        )
        == 0
    ), "a dry run must send nothing"

    page.get_by_test_id("replay-reason").fill("the account is synced now")
    page.get_by_test_id("replay-confirm").click()
    expect(page.get_by_test_id("replay-summary")).to_contain_text("1 replayed", timeout=30_000)
    _shot(page, "replay-done")

    page.get_by_test_id("replay-outcome").first.get_by_role("link").click()

    def resolved() -> bool:
        page.reload()
        return page.get_by_test_id("status-badge").first.inner_text().strip() == "resolved"

    eventually(resolved, 60, "the replayed letter to be resolved by its service")
    expect(page.get_by_test_id("history")).to_contain_text(OPERATOR)
    _shot(page, "dead-letter-resolved")
    assert (
        scalar(
            settings,
            "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = %s",
            story["opportunity"],
        )
        == 1
    )

    for name in ("reconciliation", "audit", "asyncapi"):
        page.goto(f"{console_url}/{name}")
        expect(page.get_by_test_id("nav")).to_be_visible()
        _shot(page, name)
    page.close()


def test_the_lineage_of_an_invoice_runs_from_the_crm_to_the_erp(
    browser: Browser, console_url: str, story: dict[str, str], settings: Settings
) -> None:
    eventually(
        lambda: scalar(
            settings,
            "SELECT count(*) FROM billing.subscriptions WHERE opportunity_id = %s",
            story["opportunity"],
        ),
        60,
        "the subscription",
    )
    issued = billing_jobs.run_invoices(settings, START).invoices
    [invoice] = [i for i in issued if i.account_id == story["account"]][:1]
    page = _sign_in(browser, console_url, VIEWER)
    page.goto(f"{console_url}/lineage")
    page.get_by_test_id("lineage-q").fill(invoice.invoice_id)
    page.get_by_test_id("lineage-submit").click()
    expect(page.get_by_test_id("lineage-root")).to_contain_text(invoice.invoice_id)
    posting = page.locator('[data-testid="lineage-hop"][data-kind="posting"]')

    def posted() -> bool:
        page.reload()
        return posting.count() > 0

    eventually(posted, 60, "the invoice's posting in the ERP to show in its lineage")
    for kind in ("account", "opportunity", "subscription", "invoice"):
        hop = page.locator(f'[data-testid="lineage-hop"][data-kind="{kind}"]')
        expect(hop.first).to_be_visible()
    expect(posting.first.get_by_test_id("hop-state")).not_to_have_class("break")
    _shot(page, "lineage-invoice")
    page.close()


def test_a_viewer_sees_dead_letters_but_cannot_replay_them(
    browser: Browser, console_url: str, story: dict[str, str], settings: Settings
) -> None:
    letter_id = scalar(
        settings,
        "SELECT min(id) FROM finsync.dead_letters WHERE message_key = %s",
        story["opportunity"],
    )
    page = _sign_in(browser, console_url, VIEWER)
    page.goto(f"{console_url}/exceptions/{letter_id}")
    expect(page.get_by_test_id("letter-title")).to_contain_text(str(letter_id))
    expect(page.get_by_test_id("replay-dry-run")).to_have_count(0)
    expect(page.get_by_test_id("actions")).to_have_count(0)
    _shot(page, "dead-letter-viewer")
    # Past the page, straight at the server, with the viewer's own session and CSRF token.
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    reply = page.request.post(
        f"{console_url}/exceptions/replay",
        form={"csrf_token": token or "", "ids": str(letter_id), "scope": "ids", "reason": "x"},
    )
    assert reply.status == 403
    page.close()
