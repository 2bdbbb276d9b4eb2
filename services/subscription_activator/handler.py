"""subscription-activator: a closed-won opportunity becomes a billing subscription, once.

It waits, through retries, for its account to be synced to billing; the subscription is keyed
by the opportunity, so it is created once however often the opportunity arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from finsync.contract.events import OpportunityClosed, SubscriptionActivated, SubscriptionPhase
from finsync.errors import DependencyNotReady, InvalidEvent
from finsync.ports.billing import Billing, NewSubscription
from finsync.ports.crossref import CrossReference

from .contract import phases

SOURCE = "finsync.subscription-activator"


@dataclass(frozen=True)
class Systems:
    billing: Billing
    crossref: CrossReference


def activate_subscription(
    opportunity: OpportunityClosed, systems: Systems
) -> list[SubscriptionActivated]:
    what = f"opportunity {opportunity.opportunity_id}"
    terms = phases(opportunity)  # an invalid contract is rejected before waiting for anything
    account = systems.crossref.link(opportunity.account_id)
    if account is None:
        raise DependencyNotReady(
            f"{what} is for account {opportunity.account_id}, which is not synced to billing yet"
        )
    if opportunity.currency != account.currency:
        raise InvalidEvent(
            f"{what} is in {opportunity.currency} but account {opportunity.account_id} is billed "
            f"in {account.currency}"
        )
    if opportunity.legal_entity != account.legal_entity:
        raise InvalidEvent(
            f"{what} is for {opportunity.legal_entity} but account {opportunity.account_id} "
            f"belongs to {account.legal_entity}"
        )
    subscription_id = systems.billing.create_subscription(
        NewSubscription(
            opportunity_id=opportunity.opportunity_id,
            account_id=opportunity.account_id,
            billing_account_id=account.billing_account_id,
            legal_entity=opportunity.legal_entity,
            currency=opportunity.currency,
            correlation_id=opportunity.correlation_id,
            phases=terms,
        )
    )
    return [
        opportunity.follow(
            SubscriptionActivated,
            source=SOURCE,
            subscription_id=subscription_id,
            opportunity_id=opportunity.opportunity_id,
            account_id=opportunity.account_id,
            billing_account_id=account.billing_account_id,
            currency=opportunity.currency,
            phases=[
                SubscriptionPhase(
                    sku=p.sku,
                    quantity=p.quantity,
                    unit_price=p.unit_price,
                    billing_period=p.billing_period,
                    start_date=p.start_date,
                    end_date=p.end_date,
                )
                for p in terms
            ],
        )
    ]
