"""The cross-reference port: finsync's map of CRM accounts to ERP customers and billing accounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class MatchRule(StrEnum):
    """Why a new CRM account was linked to an existing customer instead of creating one."""

    TAX_ID = "TAX_ID"
    NAME_COUNTRY = "NAME_COUNTRY"


@dataclass(frozen=True)
class AccountLink:
    """One CRM account, the customer and billing account it maps to, and what we know of it."""

    account_id: str
    erp_customer_id: str
    billing_account_id: str
    version: int
    name: str
    normalized_name: str
    country: str
    currency: str
    legal_entity: str
    tax_id: str | None = None
    email_domain: str | None = None
    parent_account_id: str | None = None
    match_rule: MatchRule | None = None
    matched_account_id: str | None = None  # the account whose customer this one shares

    @property
    def owns_customer(self) -> bool:
        """The account that created the customer; a linked duplicate does not change it."""
        return self.matched_account_id is None


class CrossReference(Protocol):
    def link(self, account_id: str, lock: bool = False) -> AccountLink | None:
        """The account's link, None if it is not synced (yet). With `lock`, no other
        transaction can change it until this one ends."""

    def match(
        self,
        tax_id: str | None,
        normalized_name: str,
        country: str,
        legal_entity: str,
        currency: str,
        account_id: str,
    ) -> AccountLink | None:
        """An account that owns a customer of the same legal entity and currency with the same
        tax id, else the same normalized name in the same country (unless both have tax ids,
        which differ: two companies), never `account_id` itself. Serializes with other
        matches until the transaction ends, so two duplicates arriving at once cannot both
        create a customer."""

    def sharing(self, erp_customer_id: str) -> Sequence[str]:
        """The accounts mapped to the customer: the account that owns it and its linked
        duplicates."""

    def save(self, link: AccountLink) -> bool:
        """Insert the account's link, or replace it with a newer version; False (and nothing
        saved) if the stored version is not older: versions only move forward."""
