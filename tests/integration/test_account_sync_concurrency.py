"""account-sync with two or more instances: versions only move forward, and a brand-new
account is never linked to itself, even when two transactions work on one account at once.

Each test runs the real handler on the real adapters in two transactions, the second started
while the first is still open — the overlap two instances have during a rebalance."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from finsync.contract.events import AccountUpserted, CustomerSynced
from finsync.errors import TransientError
from finsync.runtime import db
from finsync.settings import Settings
from services.account_sync.handler import sync_account
from services.account_sync.main import bind
from tests.support import crm_account

pytestmark = pytest.mark.integration


def version(account_id: str, n: int) -> AccountUpserted:
    name = f"Concurrent Version {n} {account_id}"
    return crm_account(account_id, n, name, tax_id=f"DE{account_id[-10:]}")


def sync(conn: psycopg.Connection, event: AccountUpserted) -> list[CustomerSynced]:
    systems = bind(conn)
    synced = sync_account(event, systems)
    systems.flush()
    return synced


def in_parallel(settings: Settings, event: AccountUpserted) -> tuple[threading.Thread, list]:
    """Sync `event` in a transaction of its own on another thread; the list gets the outcome."""
    outcome: list[object] = []

    def run() -> None:
        with db.connect(settings) as conn:
            try:
                outcome.append(sync(conn, event))
                conn.commit()
            except Exception as exc:
                conn.rollback()
                outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def xref(settings: Settings, account_id: str) -> tuple[object, ...]:
    with db.connect(settings) as conn:
        row = conn.execute(
            "SELECT x.version, x.matched_account_id, c.name FROM finsync.account_xref x "
            "JOIN erp.customers c ON c.customer_id = x.erp_customer_id WHERE x.account_id = %s",
            (account_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_stale_version_synced_at_the_same_time_as_a_newer_one_changes_nothing(
    settings: Settings,
) -> None:
    account_id = f"CONC-{uuid.uuid4().hex[:10]}"
    with db.connect(settings) as conn:
        sync(conn, version(account_id, 1))
        conn.commit()
    newer, stale = version(account_id, 3), version(account_id, 2)
    with db.connect(settings) as first:
        [done] = sync(first, newer)  # not committed yet ...
        assert done.action.value == "UPDATED"
        thread, outcome = in_parallel(settings, stale)  # ... when the stale version arrives
        time.sleep(1.5)
        first.commit()
    thread.join(30)
    assert xref(settings, account_id) == (3, None, newer.name)
    [result] = outcome
    assert not isinstance(result, list) or result[0].action.value == "UNCHANGED", result


def test_a_brand_new_account_synced_twice_at_once_is_not_linked_to_itself(
    settings: Settings,
) -> None:
    account_id = f"CONC-{uuid.uuid4().hex[:10]}"
    with db.connect(settings) as first:
        [created] = sync(first, version(account_id, 1))  # not committed yet ...
        assert created.action.value == "CREATED"
        thread, outcome = in_parallel(settings, version(account_id, 2))  # ... when v2 arrives
        time.sleep(1.5)
        first.commit()
    thread.join(30)
    version_now, matched, _ = xref(settings, account_id)
    assert matched is None, f"{account_id} is linked to {matched}"
    [result] = outcome
    # The second transaction saw no account when it started: it tries again, later.
    assert isinstance(result, TransientError), result
    assert version_now == 1
