"""Database faults that must not stop the flow: a service started while PostgreSQL is down, a
row lock someone else holds, and the limits every finsync session runs under."""

from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from finsync.runtime import db
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import (
    Forwarder,
    ServiceProcess,
    eventually,
    journals,
    publish,
    publish_to_partition,
)

pytestmark = pytest.mark.integration


def test_a_service_started_while_the_database_is_down_waits_and_starts_when_it_is_back(
    settings: Settings, serde: Serde, tmp_path: Path, rng: random.Random
) -> None:
    url = urlsplit(settings.database_url)
    database = Forwarder(url.port or 5432)  # not listening yet: the database is "down"
    down_url = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{database.port}")
    env = {"FINSYNC_DATABASE_URL": down_url.geturl()}
    service = ServiceProcess("invoice-poster", tmp_path, env).start(wait=False)
    try:
        service.wait_log("waiting 1s for the database before starting", 30)
        time.sleep(3)
        assert service.proc is not None and service.proc.poll() is None, "the service exited"
        database.start()
        service.wait_log("invoice-poster started", 60)
        invoice = documents.invoice(rng, 1)
        publish(settings, serde, [invoice])
        key = f"invoice:{invoice.invoice_id}"
        eventually(lambda: journals(settings, key) == 1, 60, "the posting")
    finally:
        assert service.stop() == 0
        database.stop()


def test_a_row_lock_held_elsewhere_does_not_hold_up_the_records_behind(
    settings: Settings, serde: Serde, tmp_path: Path, rng: random.Random
) -> None:
    invoice, behind = documents.invoice(rng, 1), documents.invoice(rng, 2)
    memo = documents.credit_memo(rng, invoice)
    env = {
        "FINSYNC_DB_LOCK_TIMEOUT_SECONDS": "1",
        "FINSYNC_RETRY_BASE_SECONDS": "1",
        "FINSYNC_RETRY_BUDGET_SECONDS": "600",
    }
    service = ServiceProcess("invoice-poster", tmp_path, env).start()
    try:
        publish(settings, serde, [invoice])
        eventually(lambda: journals(settings, f"invoice:{invoice.invoice_id}") == 1, 60)
        with db.connect(settings) as holder:  # an open transaction holding the invoice's row
            holder.execute(
                "SELECT 1 FROM erp.ar_open_items WHERE invoice_id = %s FOR UPDATE",
                (invoice.invoice_id,),
            )
            # The memo waits for the lock; the invoice of another key must not wait with it.
            publish_to_partition(settings, serde, 0, [memo, behind])
            eventually(
                lambda: journals(settings, f"invoice:{behind.invoice_id}") == 1,
                30,
                "the invoice behind the locked credit memo to post while the lock is held",
            )
            assert journals(settings, f"credit-memo:{memo.credit_memo_id}") == 0
        memo_key = f"credit-memo:{memo.credit_memo_id}"
        eventually(lambda: journals(settings, memo_key) == 1, 60, "the memo, once the lock is gone")
    finally:
        assert service.stop() == 0


def test_every_session_runs_with_timeouts_and_keepalives(settings: Settings) -> None:
    with db.connect(settings) as conn:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "tcp_keepalives_idle",
            )
        }
        assert conn.info.get_parameters()["keepalives"] == "1"
    assert shown == {
        "statement_timeout": "1min",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
        "tcp_keepalives_idle": "30",
    }
