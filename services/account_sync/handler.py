"""account-sync: a CRM account becomes an ERP customer and a billing account, once.

A version not newer than the one synced changes nothing. A new account that duplicates an
existing customer (same tax id, or same name and country) is linked to it, not created again.
A child account waits, through retries, for its parent to be synced. A version that changes
the account's currency or legal entity while business is open under it (open invoices,
subscriptions not ended) is refused whole: a dead letter that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from finsync.contract.events import AccountUpserted, CustomerSynced, SyncAction
from finsync.errors import DependencyNotReady, InvalidEvent, TransientError
from finsync.ports.billing import Billing, BillingAccount
from finsync.ports.crossref import AccountLink, CrossReference
from finsync.ports.erp import Customer, Erp

from .matching import normalize_name, normalize_tax_id
from .rules import OpenBusiness, changed, link_for, match_rule, moves, refusal, validate

SOURCE = "finsync.account-sync"


@dataclass(frozen=True)
class Systems:
    erp: Erp
    billing: Billing
    crossref: CrossReference

    def flush(self) -> None:
        self.erp.flush()


def sync_account(account: AccountUpserted, systems: Systems) -> list[CustomerSynced]:
    validate(account)
    crossref = systems.crossref
    link = crossref.link(account.account_id, lock=True)  # one transaction per account at a time
    if link is not None and account.version <= link.version:
        return [_synced(account, link, SyncAction.UNCHANGED)]  # stale or replayed: ignored
    parent = None
    if account.parent_account_id is not None:
        parent = crossref.link(account.parent_account_id)
        if parent is None:
            raise DependencyNotReady(
                f"account {account.account_id} has parent {account.parent_account_id}, "
                "which is not synced yet"
            )
    if link is None:
        return [_create_or_link(account, parent, systems)]

    # A linked duplicate stays linked to the customer it shares.
    new = link_for(
        account,
        link.erp_customer_id,
        link.billing_account_id,
        link.match_rule,
        link.matched_account_id,
    )
    _refuse_a_move_under_open_business(link, new, systems)
    if link.owns_customer and changed(link, new):
        customer, billing_account = _details(account, parent)
        systems.erp.update_customer(link.erp_customer_id, customer)
        systems.billing.update_account(link.billing_account_id, billing_account)
        action = SyncAction.UPDATED
    else:
        action = SyncAction.UNCHANGED  # nothing the systems hold changed, or not its customer
    _save(systems.crossref, new)
    return [_synced(account, new, action)]


def _refuse_a_move_under_open_business(
    link: AccountLink, new: AccountLink, systems: Systems
) -> None:
    """Raises InvalidEvent when `new` moves the account's currency or legal entity while
    business is open under it. Nothing of the version is applied, and the cross-reference
    keeps the version applied last: a later version without the move goes through, and the
    refused one, replayed after it, is stale."""
    if not moves(link, new):
        return
    # An owner's customer and billing account also carry its linked duplicates' business.
    accounts = (
        systems.crossref.sharing(link.erp_customer_id) if link.owns_customer else [link.account_id]
    )
    business = OpenBusiness(
        invoices=systems.erp.open_invoices(accounts),
        subscriptions=systems.billing.active_subscriptions(accounts, datetime.now(UTC).date()),
    )
    reason = refusal(link, new, business)
    if reason is not None:
        raise InvalidEvent(reason)


def _create_or_link(
    account: AccountUpserted, parent: AccountLink | None, systems: Systems
) -> CustomerSynced:
    existing = systems.crossref.match(
        normalize_tax_id(account.tax_id),
        normalize_name(account.name),
        account.country,
        account.legal_entity,
        account.currency,
        account.account_id,
    )
    if systems.crossref.link(account.account_id) is not None:
        # Another instance synced this account while we waited for the match lock.
        raise TransientError(
            f"account {account.account_id} was synced by another transaction meanwhile"
        )
    if existing is not None:
        link = link_for(
            account,
            existing.erp_customer_id,
            existing.billing_account_id,
            match_rule(existing, account),
            existing.account_id,
        )
        _save(systems.crossref, link)
        return _synced(account, link, SyncAction.UNCHANGED)  # no customer created or changed
    customer, billing_account = _details(account, parent)
    link = link_for(
        account,
        systems.erp.create_customer(customer),
        systems.billing.create_account(billing_account),
    )
    _save(systems.crossref, link)
    return _synced(account, link, SyncAction.CREATED)


def _save(crossref: CrossReference, link: AccountLink) -> None:
    if not crossref.save(link):  # a newer version was saved since this one was read
        raise TransientError(
            f"account {link.account_id} v{link.version} lost a race with a newer version"
        )


def _details(
    account: AccountUpserted, parent: AccountLink | None
) -> tuple[Customer, BillingAccount]:
    customer = Customer(
        account_id=account.account_id,
        name=account.name,
        country=account.country,
        currency=account.currency,
        legal_entity=account.legal_entity,
        tax_id=account.tax_id,
        email_domain=account.email_domain,
        parent_customer_id=parent.erp_customer_id if parent else None,
    )
    billing_account = BillingAccount(
        account_id=account.account_id,
        name=account.name,
        country=account.country,
        currency=account.currency,
        legal_entity=account.legal_entity,
        email_domain=account.email_domain,
        parent_billing_account_id=parent.billing_account_id if parent else None,
    )
    return customer, billing_account


def _synced(account: AccountUpserted, link: AccountLink, action: SyncAction) -> CustomerSynced:
    return account.follow(
        CustomerSynced,
        source=SOURCE,
        account_id=account.account_id,
        erp_customer_id=link.erp_customer_id,
        billing_account_id=link.billing_account_id,
        action=action,
        version=account.version,
        matched_account_id=link.matched_account_id,
        match_rule=link.match_rule.value if link.match_rule else None,
    )
