"""The demo is the first thing a new user runs: it must tell the truth about the books."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import replace

import pytest

from finsync.console import background
from finsync.contract.topics import ANALYTICS
from finsync.settings import Settings
from finsync.stack import analytics
from services.finance_analytics.reader import DEAD_LETTER_TOPICS, EVENT_TOPICS
from tests.support import commit_at_end, free_port

pytestmark = pytest.mark.e2e


def test_the_demo_takes_every_deal_from_crm_account_to_applied_cash(settings: Settings) -> None:
    port = free_port()  # its console, apart from one a user's own demo may have running
    console = replace(settings, console_port=port)
    # Its finance-analytics too, counting from here on: the test stack holds every earlier
    # test's events, which a user's first demo would not have.
    group = f"{ANALYTICS}-demo-{os.getpid()}"
    counting = replace(settings, analytics_port=free_port(), analytics_group=group)
    commit_at_end(settings, group, [*EVENT_TOPICS, *DEAD_LETTER_TOPICS])
    env = {
        **os.environ,
        "FINSYNC_DEMO_ACCOUNTS": "120",
        "FINSYNC_CONSOLE_PORT": str(port),
        "FINSYNC_ANALYTICS_PORT": str(counting.analytics_port),
        "FINSYNC_ANALYTICS_GROUP": group,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "finsync.scenario.demo"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        # The console stays up after the demo, for the books it just played.
        with urllib.request.urlopen(f"{background.url(console)}/healthz", timeout=5) as reply:
            assert reply.status == 200
        # So does finance-analytics, for the console's KPI page.
        with urllib.request.urlopen(f"{counting.analytics_url}/kpis", timeout=5) as reply:
            assert reply.status == 200
    finally:
        background.stop_port(console)
        analytics.stop_port(counting)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    secret = background.secret_file(settings)
    assert f"ops console at http://127.0.0.1:{port}" in out and str(secret) in out
    assert secret.stat().st_mode & 0o077 == 0  # its operator's password: readable by its owner
    assert secret.read_text().strip() not in out
    for stage in ("CRM accounts", "Opportunities", "Invoices", "Credit memos", "Payments"):
        assert stage in out
    assert "valid closed-won opportunities reached an invoice posting" in out
    # The one ✗ is the payout planted with a wrong item, which reconcile must name.
    crosses = [line for line in out.splitlines() if "✗" in line]
    assert len(crosses) == 1 and "payouts match their documents" in crosses[0], out
    assert "✓ the planted payout mismatch is reported by name" in out
    assert "DOES NOT NET TO ZERO" not in out
    # The cash section: gateway clearing equals what is in transit, for every entity.
    assert "Cash of this run" in out
    assert "✓ gateway clearing (1010) equals what is in transit by the documents" in out
    assert "total nets to zero" in out  # the trial balance, net per account
    # The run's books reconcile: every check of `finsync reconcile` ran and found no break,
    # and the documents its dead letters hold are listed as held, with their reasons.
    for check in ("GL 1200 equals the AR sub-ledger", "every billing period due has an invoice"):
        assert check in out
    assert "1 break(s)" in out and " held in dead letters" in out
    for error in ("InvalidEvent", "UndecodableEvent", "DependencyNotReady"):
        assert error in out
    assert "Finance KPIs, last 90 days" in out and "ACME-US" in out.split("Finance KPIs")[1]
