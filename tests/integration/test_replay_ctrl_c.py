"""Ctrl-C at `finsync dlq replay`: the first stops it before its next chunk, so nothing is
caught half-way between claimed and sent."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest

from finsync.ops import replay_sending as sending
from finsync.settings import Settings
from tests.integration.replay_support import audited, indexed
from tests.support import eventually

pytestmark = pytest.mark.integration


def test_the_first_ctrl_c_stops_a_replay_before_its_next_chunk(settings: Settings) -> None:
    key = f"CTRL-C-{uuid.uuid4().hex[:10]}".encode()
    ids = indexed(settings, key, 5)
    argv = ["dlq", "replay", *map(str, ids), "--rate", "1", "--reason", "test", "--by", "sre"]
    replay = subprocess.Popen(
        [sys.executable, "-m", "finsync.cli.main", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:  # one letter a second: Ctrl-C once the first is on its way
        eventually(lambda: audited(settings, key)[1][0] == "replayed", 30, "the first letter")
        replay.send_signal(signal.SIGINT)
        output, _ = replay.communicate(timeout=60)
    finally:
        replay.kill()
    rows, statuses = audited(settings, key)
    outcomes = [outcome for *_, outcome, _ in rows]
    sent = outcomes.count("replayed")
    assert replay.returncode == 130, output
    assert "Ctrl-C: stopping" in output
    assert 1 <= sent < 5
    assert outcomes == ["replayed"] * sent + [sending.CANCELLED] * (5 - sent)
    assert statuses == ["replayed"] * sent + ["open"] * (5 - sent)  # a later replay sends them
    assert f"{sent} replayed" in output and f"{5 - sent} cancelled" in output
