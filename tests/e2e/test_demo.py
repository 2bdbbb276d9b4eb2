"""The demo is the first thing a new user runs: it must tell the truth about the books."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finsync.settings import Settings

pytestmark = pytest.mark.e2e


def test_the_demo_takes_every_deal_from_crm_account_to_applied_cash(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "finsync.scenario.demo"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "FINSYNC_DEMO_ACCOUNTS": "120"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for stage in ("CRM accounts", "Opportunities", "Invoices", "Credit memos", "Payments"):
        assert stage in out
    assert "valid closed-won opportunities reached an invoice posting" in out
    assert "✗" not in out and "DOES NOT NET TO ZERO" not in out
    assert "total nets to zero" in out  # the trial balance, net per account
    # The run's books reconcile: every check of `finsync reconcile` ran and found no break,
    # and the documents its dead letters hold are listed as held, with their reasons.
    for check in ("GL 1200 equals the AR sub-ledger", "every billing period due has an invoice"):
        assert check in out
    assert "no breaks, " in out and " held in dead letters" in out
    for error in ("InvalidEvent", "UndecodableEvent", "DependencyNotReady"):
        assert error in out
