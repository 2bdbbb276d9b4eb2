"""Personal data from the CRM — names, email domains, tax ids — never reaches a log line,
whatever happens to the account: synced, waiting for its parent, or dead-lettered."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from finsync.contract.events import AccountUpserted
from finsync.runtime import dlq
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.support import FAST_RETRIES, ServiceProcess, crm_account, eventually, publish

pytestmark = pytest.mark.integration


def test_no_name_email_domain_or_tax_id_appears_in_the_service_log(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]

    def account(n: int, name: str, **changes: object) -> AccountUpserted:
        personal = {"tax_id": f"DE{tag}{n}", "email_domain": f"mail-{tag}-{n}.example"}
        return crm_account(f"PII-{tag}-{n}", 1, name, **{**personal, **changes})

    accounts = [
        account(1, f"Valid Person {tag}"),
        account(2, f"Waiting Child {tag}", parent_account_id=f"PII-{tag}-missing"),
        account(3, f"Bad Country {tag}", country="XX"),
        account(4, f"‼ ⁂ ‼ {'※' * (len(tag) % 5 + 1)} {'⁑' * 3}"),  # a name with no letters
    ]
    service = ServiceProcess("account-sync", tmp_path, FAST_RETRIES).start()
    try:
        publish(settings, serde, accounts)
        keys = {a.account_id for a in accounts[1:]}
        eventually(
            lambda: keys <= {x.record.key_text for x in dlq.read(settings, "account-sync")},
            60,
            "the waiting and the invalid accounts to be dead-lettered",
        )
    finally:
        assert service.stop() == 0
    # Read as a person would see it: JSON escapes would hide non-ASCII names from a search.
    log = "\n".join(
        json.dumps(json.loads(line), ensure_ascii=False)
        for line in service.log.read_text().splitlines()
        if line.startswith("{")
    )
    assert "dead-lettered" in log and "retried" in log  # the log did speak of them
    for a in accounts:
        for personal in (a.name, a.email_domain, a.tax_id):
            assert personal and personal not in log, f"{personal!r} is in {service.log}"
