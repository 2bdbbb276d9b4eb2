"""The demo is the first thing a new user runs: it must tell the truth about the books."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finsync.settings import Settings

pytestmark = pytest.mark.e2e


def test_the_demo_posts_every_document_once_and_the_books_balance(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "finsync.demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FINSYNC_DEMO_SEED": "4242", "COLUMNS": "200"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "invoices posted      96/96, one journal entry each" in out
    assert "credit memos posted  8/8" in out
    assert "re-sent under a new event id: 1 journal entry" in out
    assert "InvalidEvent" in out and "UndecodableEvent" in out
    assert "NOT BALANCED" not in out
    assert "every journal entry balances" in out
