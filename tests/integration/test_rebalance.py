"""Rebalances while records wait in retry: a partition paused for a record not due yet must
not stay paused once the group has moved partitions around and handed it back."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import ServiceProcess, eventually, journals, publish

pytestmark = pytest.mark.integration

SLOW_RETRIES = {"FINSYNC_RETRY_BASE_SECONDS": "6", "FINSYNC_RETRY_BUDGET_SECONDS": "600"}


def test_a_retry_partition_paused_before_a_rebalance_resumes_after_it(
    settings: Settings, serde: Serde, tmp_path: Path, rng: random.Random
) -> None:
    invoice = documents.invoice(rng, 1)
    memo = documents.credit_memo(rng, invoice)
    first = ServiceProcess("invoice-poster", tmp_path, SLOW_RETRIES).start()
    second = ServiceProcess("invoice-poster", tmp_path, SLOW_RETRIES)
    try:
        publish(settings, serde, [memo])  # its invoice is not posted: it waits in retry
        first.wait_log("retried billing.credit-memo-issued", 30)
        time.sleep(1)  # the retry record is read, not due, and its partition paused
        second.start()  # a rebalance: partitions move to the second instance ...
        time.sleep(8)
        assert second.stop() == 0  # ... and back to the first when it leaves
        time.sleep(5)
        publish(settings, serde, [invoice])
        eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 60)
        eventually(
            lambda: journals(settings, f"credit-memo:{memo.credit_memo_id}") == 1,
            90,
            "the credit memo waiting in retry to post after the rebalances",
        )
    finally:
        assert first.stop() == 0
        if second.proc is not None and second.proc.poll() is None:
            second.stop()
