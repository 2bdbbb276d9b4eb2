"""account-sync on the real stack, for accounts with business under them: a version that moves
an account's currency or legal entity while invoices are open or subscriptions run is a dead
letter that says why, and changes nothing; a linked duplicate's versions never touch the
customer, billing account or cross-reference row of the account it shares them with."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from finsync.contract.events import AccountUpserted, BillingPeriod
from finsync.ports.billing import NewSubscription, Phase
from finsync.reference.billing.adapter import ReferenceBilling
from finsync.reference.erp.adapter import ReferenceErp
from finsync.runtime import db, dlq
from finsync.runtime.serde import Serde
from finsync.settings import Settings
from tests.integration.port_support import an_invoice, invoice_journal
from tests.support import ServiceProcess, crm_account, eventually, publish

pytestmark = pytest.mark.integration


def _row(settings: Settings, sql: str, key: str) -> tuple[object, ...] | None:
    with db.connect(settings) as conn:
        row = conn.execute(sql, (key,)).fetchone()
    return None if row is None else tuple(row)


def _xref(settings: Settings, account_id: str) -> tuple[object, ...] | None:
    """The account's whole cross-reference row, `synced_at` included."""
    return _row(settings, "SELECT * FROM finsync.account_xref WHERE account_id = %s", account_id)


def _version(settings: Settings, account_id: str) -> int | None:
    row = _row(
        settings, "SELECT version FROM finsync.account_xref WHERE account_id = %s", account_id
    )
    return None if row is None else int(str(row[0]))


def _customer(settings: Settings, customer_id: str) -> tuple[object, ...] | None:
    return _row(settings, "SELECT * FROM erp.customers WHERE customer_id = %s", customer_id)


def _billing_account(settings: Settings, billing_account_id: str) -> tuple[object, ...] | None:
    return _row(
        settings, "SELECT * FROM billing.accounts WHERE billing_account_id = %s", billing_account_id
    )


def _ids(settings: Settings, account_id: str) -> tuple[str, str]:
    row = _row(
        settings,
        "SELECT erp_customer_id, billing_account_id FROM finsync.account_xref "
        "WHERE account_id = %s",
        account_id,
    )
    assert row is not None
    return str(row[0]), str(row[1])


def _owner_and_duplicate(tag: str) -> tuple[AccountUpserted, AccountUpserted]:
    tax_id = f"DE{uuid.uuid4().int % 10**11:011d}"
    owner = crm_account(f"MD-{tag}-O", 1, f"Master Data Owner {tag}", tax_id=tax_id)
    duplicate = crm_account(f"MD-{tag}-D", 1, f"Master Data Branch {tag}", tax_id=tax_id)
    return owner, duplicate


def _synced(
    settings: Settings,
    serde: Serde,
    tmp_path: Path,
    owner: AccountUpserted,
    duplicate: AccountUpserted,
) -> ServiceProcess:
    """account-sync, started, with `owner` synced, then `duplicate` linked to it (two keys: on
    two partitions, so one after the other)."""
    service = ServiceProcess("account-sync", tmp_path).start()
    try:
        for account in (owner, duplicate):
            publish(settings, serde, [account])
            key = account.account_id
            eventually(lambda: _version(settings, key) == 1, 60, f"{key} to be synced")  # noqa: B023
        linked = _row(
            settings, "SELECT matched_account_id FROM finsync.account_xref WHERE account_id = %s",
            duplicate.account_id,
        )  # fmt: skip
        assert linked == (owner.account_id,)
    except BaseException:
        service.stop()
        raise
    return service


def _version_of(account: AccountUpserted, version: int, **changes: object) -> AccountUpserted:
    return account.model_copy(update={"event_id": uuid.uuid4(), "version": version, **changes})


def test_a_move_of_currency_or_legal_entity_under_open_business_is_a_dead_letter(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    owner, duplicate = _owner_and_duplicate(tag)
    service = _synced(settings, serde, tmp_path, owner, duplicate)
    try:
        customer_id, billing_account_id = _ids(settings, owner.account_id)
        assert _ids(settings, duplicate.account_id) == (customer_id, billing_account_id)
        # Open business: an invoice of the duplicate's, a subscription of the owner's (not
        # started yet, which counts, and which no other test's invoice run bills).
        with db.connect(settings) as conn:
            erp = ReferenceErp(conn)
            invoice = an_invoice(duplicate.account_id)
            erp.post_invoice(invoice, invoice_journal(invoice))
            erp.flush()
            phase = Phase("1", "PLAT", "Platform", Decimal(1), Decimal("10.00"),
                          BillingPeriod.MONTHLY, date(2098, 1, 1), date(2099, 12, 31))  # fmt: skip
            ReferenceBilling(conn).create_subscription(
                NewSubscription(
                    f"OPP-MD-{tag}", owner.account_id, billing_account_id, "ACME-DE", "EUR",
                    f"corr-{tag}", (phase,),
                )
            )  # fmt: skip
            conn.commit()

        renamed = f"Master Data Owner Renamed {tag}"
        publish(
            settings,
            serde,
            [
                _version_of(owner, 2, currency="USD", name=f"Never Applied {tag}"),
                _version_of(owner, 3, name=renamed),  # no move: goes through
                _version_of(duplicate, 2, legal_entity="ACME-US"),
                _version_of(duplicate, 3, email_domain=f"branch-{tag}.example"),
            ],
        )

        def letters() -> dict[str, str]:
            keys = {owner.account_id, duplicate.account_id}
            found = {
                x.record.key_text or "": x.reason
                for x in dlq.read(settings, "account-sync")
                if x.record.key_text in keys and x.error_class == "InvalidEvent"
            }
            return found if len(found) == 2 else {}

        reasons = eventually(letters, 60, "the two moves to be dead-lettered")
        eventually(
            lambda: (
                _version(settings, owner.account_id) == 3
                and _version(settings, duplicate.account_id) == 3
            ),
            60,
            "the versions after them to be synced",
        )
    finally:
        assert service.stop() == 0

    assert reasons[owner.account_id] == (
        f"account {owner.account_id} v2 changes its currency from EUR to USD while its customer "
        "has open business: 1 open invoice, 1 active subscription. The whole version is refused "
        "and v1 stays in force; close or move that business first, or send a version without "
        "the change"
    )
    assert reasons[duplicate.account_id].startswith(
        f"account {duplicate.account_id} v2 changes its legal entity from ACME-DE to ACME-US "
        "while it has open business: 1 open invoice."
    )
    assert _row(
        settings, "SELECT name, currency, legal_entity FROM erp.customers WHERE customer_id = %s",
        customer_id,
    ) == (renamed, "EUR", "ACME-DE")  # fmt: skip
    assert _row(
        settings, "SELECT name, currency, legal_entity FROM billing.accounts "
        "WHERE billing_account_id = %s", billing_account_id,
    ) == (renamed, "EUR", "ACME-DE")  # fmt: skip
    xref = "SELECT currency, legal_entity, email_domain FROM finsync.account_xref "
    assert _row(settings, xref + "WHERE account_id = %s", owner.account_id) == (
        "EUR",
        "ACME-DE",
        owner.email_domain,
    )
    assert _row(settings, xref + "WHERE account_id = %s", duplicate.account_id) == (
        "EUR",
        "ACME-DE",
        f"branch-{tag}.example",
    )


def test_a_linked_duplicates_versions_never_change_what_the_owner_holds(
    settings: Settings, serde: Serde, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    owner, duplicate = _owner_and_duplicate(tag)
    service = _synced(settings, serde, tmp_path, owner, duplicate)
    try:
        customer_id, billing_account_id = _ids(settings, owner.account_id)
        before = (
            _xref(settings, owner.account_id),
            _customer(settings, customer_id),
            _billing_account(settings, billing_account_id),
        )
        publish(
            settings,
            serde,
            [
                _version_of(duplicate, 2, name=f"Branch Renamed {tag}", country="AT",
                            tax_id=f"ATU{tag[:8]}", email_domain=f"b-{tag}.example"),
                _version_of(duplicate, 3, currency="USD"),  # nothing open: applied
                _version_of(duplicate, 4, currency="USD", legal_entity="ACME-US",
                            parent_account_id=owner.account_id),
            ],
        )  # fmt: skip
        eventually(lambda: _version(settings, duplicate.account_id) == 4, 60, "the versions")
    finally:
        assert service.stop() == 0

    after = (
        _xref(settings, owner.account_id),
        _customer(settings, customer_id),
        _billing_account(settings, billing_account_id),
    )
    assert after == before
    assert _ids(settings, duplicate.account_id) == (customer_id, billing_account_id)
    assert _row(
        settings, "SELECT matched_account_id, currency, legal_entity FROM finsync.account_xref "
        "WHERE account_id = %s", duplicate.account_id,
    ) == (owner.account_id, "USD", "ACME-US")  # still linked to its owner  # fmt: skip
