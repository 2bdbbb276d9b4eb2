"""Per-key order through retries: while a record of a key waits in retry, later records of the
same key wait behind it, in order, and every other key of the partition keeps flowing. And one
event never runs in two retry chains, whatever happens to offset commits."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from finsync.contract.events import AccountUpserted, CustomerSynced
from finsync.runtime import dlq
from finsync.runtime.serde import Serde
from finsync.scenario import documents
from finsync.settings import Settings
from tests.support import (
    FAST_RETRIES,
    ServiceProcess,
    TopicTail,
    crm_account,
    drain,
    eventually,
    publish,
    publish_to_partition,
)

pytestmark = pytest.mark.integration


def account(account_id: str, version: int, name: str, parent: str | None = None) -> AccountUpserted:
    return crm_account(account_id, version, name, parent_account_id=parent)


def test_three_records_of_a_key_take_effect_in_order_while_the_first_waits_and_others_flow(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    parent = account(f"ORD-P-{tag}", 1, f"Parent Holding {tag}")
    child = f"ORD-C-{tag}"
    versions = [
        account(child, 1, f"Child One {tag}", parent=parent.account_id),  # waits for its parent
        account(child, 2, f"Child Two {tag}"),
        account(child, 3, f"Child Three {tag}"),
    ]
    other = account(f"ORD-O-{tag}", 1, f"Other Trading {tag}")  # same partition, another key
    tail = TopicTail(settings, CustomerSynced.TOPIC)
    service = ServiceProcess("account-sync", tmp_path, {"FINSYNC_RETRY_BASE_SECONDS": "1"}).start()
    try:
        publish_to_partition(settings, serde, 0, [*versions, other])

        def synced(account_id: str) -> list[CustomerSynced]:
            return [
                serde.decode(CustomerSynced.TOPIC, r.value)  # type: ignore[misc]
                for r in tail.poll(0.3)
                if r.key_text == account_id
            ]

        eventually(lambda: synced(other.account_id), 30, "the other key to flow")
        time.sleep(2)
        assert synced(child) == [], "later versions of the child went ahead of the first"
        publish(settings, serde, [parent])
        done = eventually(lambda: len(synced(child)) >= 3 and synced(child), 60, "the child")
        assert [(e.version, e.action.value) for e in done] == [
            (1, "CREATED"),
            (2, "UPDATED"),
            (3, "UPDATED"),
        ]
    finally:
        assert service.stop() == 0
        tail.close()


def test_a_redelivery_after_a_failed_offset_commit_starts_no_second_retry_chain(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    inputs = ["billing.invoice-issued", "billing.credit-memo-issued"]
    drain(settings, "invoice-poster", inputs, tmp_path)  # so the next batch is ours alone
    memo = documents.credit_memo(random.Random(), documents.invoice(random.Random(), 1))
    crashing = ServiceProcess(
        "invoice-poster", tmp_path, {**FAST_RETRIES, "FINSYNC_FAULT_PAUSE": "before-offset-commit"}
    ).start()
    publish(settings, serde, [memo])  # its invoice never comes: retried, then a dead letter
    crashing.wait_log("fault point before-offset-commit reached", 30)
    crashing.kill()  # the retry is committed, the offset of the memo is not
    again = ServiceProcess("invoice-poster", tmp_path, FAST_RETRIES).start()
    try:
        key = memo.credit_memo_id.encode()

        def letters() -> list[dlq.DeadLetter]:
            return [x for x in dlq.read(settings, "invoice-poster") if x.record.key == key]

        eventually(letters, 60, "the memo's dead letter")
        time.sleep(5)  # time for a second chain to end in a second dead letter
        assert len(letters()) == 1
    finally:
        assert again.stop() == 0
