"""Who may pay whose invoice, pure: a payer pays invoices of its own account hierarchy.

Two CRM accounts are one payer family when they are the same account, map to the same ERP
customer (a linked duplicate shares its customer), or reach a common account through
`parent_account_id` links. Links are walked up at most MAX_DEPTH steps, and a cycle (bad CRM
data) ends the walk instead of looping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from finsync.ports.crossref import AccountLink

MAX_DEPTH = 16  # parent links walked up from an account

LinkOf = Callable[[str], AccountLink | None]


@dataclass(frozen=True)
class Lineage:
    """An account and its ancestors: their CRM account ids and ERP customers."""

    accounts: frozenset[str]
    customers: frozenset[str]


def lineage(account_id: str, link_of: LinkOf) -> Lineage:
    accounts: list[str] = []
    customers: set[str] = set()
    current: str | None = account_id
    while current is not None and current not in accounts and len(accounts) <= MAX_DEPTH:
        accounts.append(current)
        link = link_of(current)
        if link is None:  # not synced (yet): the chain ends here
            break
        customers.add(link.erp_customer_id)
        current = link.parent_account_id
    return Lineage(frozenset(accounts), frozenset(customers))


def may_pay(payer_account: str, invoice_account: str, link_of: LinkOf) -> bool:
    """Whether the payer's cash may settle an invoice of `invoice_account`."""
    if payer_account == invoice_account:
        return True
    payer, holder = lineage(payer_account, link_of), lineage(invoice_account, link_of)
    return bool(payer.accounts & holder.accounts or payer.customers & holder.customers)


def stranger(invoice_id: str, invoice_account: str, payer_account: str) -> str:
    """Why a payment's cash was not applied: ids only, no names."""
    return (
        f"invoice {invoice_id} belongs to account {invoice_account}, outside the account "
        f"hierarchy of payer {payer_account}"
    )
