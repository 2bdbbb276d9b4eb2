"""Chaos, the short version of `make chaos`: the order-to-cash scenario through the four
services as processes while each is SIGKILLed and restarted, a second instance of each joins
and leaves, Kafka is SIGKILLed, PostgreSQL crash-stopped and the registry stopped a while.
Nothing may be lost, take effect twice, unbalance a journal, split AR from its ledger or be
dead-lettered but what the scenario expects; and the stack is left up for the tests after.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from finsync import stack
from finsync.scenario.chaos.monkey import KILL, KINDS
from finsync.settings import Settings

pytestmark = pytest.mark.e2e

# Small enough for `make test` (about two to three minutes on two cores), every fault in.
SHORT = ["--events", "2000", "--kills", "1", "--registry-seconds", "10"]
TIMEOUT = 400  # seconds; then it is interrupted, which still stops its services


def test_faults_everywhere_lose_duplicate_and_misroute_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    report = tmp_path / "figures.json"
    command = [sys.executable, "-m", "finsync.scenario.chaos", *SHORT, "--report", str(report)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            out, _ = run.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGINT)
            out, _ = run.communicate(timeout=150)
            pytest.fail(f"the chaos run took longer than {TIMEOUT} s:\n{out}")
    assert report.exists(), out
    figures = json.loads(report.read_text())
    assert figures["incomplete"] == "", out
    assert figures["faults"] == figures["planned"], out
    assert set(figures["faults"]) == set(KINDS) and figures["faults"][KILL] >= 4
    assert not any(figures["lost"].values()), figures["lost"]
    assert figures["duplicated"] == []
    assert figures["unbalanced"] == 0
    assert figures["ar_differences"] == []
    assert figures["unexpected_dead"] == [] and figures["missing_dead"] == []
    assert figures["exits"] == [] and figures["failed_faults"] == []
    assert figures["events"] >= 1500
    assert run.returncode == 0, out
    assert all(healthy for _, healthy, _ in stack.status(settings)), stack.status(settings)
