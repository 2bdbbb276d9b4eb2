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
    assert "✗" not in out and "NOT BALANCED" not in out
    assert "every journal entry balances" in out
    assert "AR open amount = invoiced - credit memos - applied cash - write-offs" in out
    for error in ("InvalidEvent", "UndecodableEvent", "DependencyNotReady"):
        assert error in out
