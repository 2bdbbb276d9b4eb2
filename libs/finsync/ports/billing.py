"""The billing port: what services may ask of the billing platform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from finsync.contract.events import BillingPeriod


@dataclass(frozen=True)
class BillingAccount:
    account_id: str  # the CRM account that creates it: its idempotency key
    name: str
    country: str
    currency: str
    legal_entity: str
    email_domain: str | None
    parent_billing_account_id: str | None


@dataclass(frozen=True)
class Phase:
    """One contract line as billing bills it: quantity x unit price every billing period."""

    line_id: str
    sku: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    billing_period: BillingPeriod
    start_date: date
    end_date: date


@dataclass(frozen=True)
class NewSubscription:
    opportunity_id: str  # its idempotency key: one subscription per opportunity
    account_id: str
    billing_account_id: str
    legal_entity: str
    currency: str
    correlation_id: str  # carried onto every invoice of the subscription
    phases: tuple[Phase, ...]


class Billing(Protocol):
    def create_account(self, account: BillingAccount) -> str:
        """Create the billing account; returns its id. Rejects a second create for the same
        CRM account."""

    def update_account(self, billing_account_id: str, account: BillingAccount) -> None:
        """Change the account's details."""

    def active_subscriptions(self, account_ids: Sequence[str], as_of: date) -> int:
        """How many subscriptions these CRM accounts bought that have a phase not ended by
        `as_of` (started or not)."""

    def create_subscription(self, subscription: NewSubscription) -> str:
        """Create the subscription and its phases; returns its id. Rejects a second create for
        the same opportunity, and a legal entity billing does not invoice for."""
