"""The reference billing system on PostgreSQL (schema `billing`), behind the Billing port.

Idempotency keys are unique constraints: one billing account per creating CRM account, one
subscription per opportunity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date

import psycopg

from finsync.errors import InvalidEvent
from finsync.ports.billing import BillingAccount, NewSubscription
from finsync.runtime import telemetry


def subscription_id(opportunity_id: str) -> str:
    """Derived from the opportunity, so whoever knows the deal knows its subscription."""
    return f"SUB-{opportunity_id}"


class ReferenceBilling:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _check_entity(self, legal_entity: str) -> None:
        if not self.conn.execute(
            "SELECT 1 FROM billing.legal_entities WHERE legal_entity = %s", (legal_entity,)
        ).fetchone():
            raise InvalidEvent(
                f"billing does not invoice for legal entity {legal_entity!r}; "
                "add it to billing.legal_entities with its tax rate"
            )

    def create_account(self, account: BillingAccount) -> str:
        self._check_entity(account.legal_entity)
        row = self.conn.execute(
            "INSERT INTO billing.accounts (billing_account_id, account_id, name, country, "
            "currency, legal_entity, email_domain, parent_billing_account_id) "
            "VALUES ('BA-' || lpad(nextval('billing.account_number')::text, 6, '0'), "
            "%(account_id)s, %(name)s, %(country)s, %(currency)s, %(legal_entity)s, "
            "%(email_domain)s, %(parent_billing_account_id)s) RETURNING billing_account_id",
            asdict(account),
        ).fetchone()
        assert row is not None
        return str(row[0])

    def update_account(self, billing_account_id: str, account: BillingAccount) -> None:
        self._check_entity(account.legal_entity)
        self.conn.execute(
            "UPDATE billing.accounts SET name = %(name)s, country = %(country)s, "
            "currency = %(currency)s, legal_entity = %(legal_entity)s, "
            "email_domain = %(email_domain)s, "
            "parent_billing_account_id = %(parent_billing_account_id)s, updated_at = now() "
            "WHERE billing_account_id = %(billing_account_id)s",
            {**asdict(account), "billing_account_id": billing_account_id},
        )

    def active_subscriptions(self, account_ids: Sequence[str], as_of: date) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM billing.subscriptions s WHERE s.account_id = ANY(%s) "
            "AND EXISTS (SELECT 1 FROM billing.subscription_phases p "
            "WHERE p.subscription_id = s.subscription_id AND p.end_date >= %s)",
            (list(account_ids), as_of),
        ).fetchone()
        return int(row[0]) if row else 0

    def create_subscription(self, subscription: NewSubscription) -> str:
        s = subscription
        self._check_entity(s.legal_entity)
        sub_id = subscription_id(s.opportunity_id)
        trace = dict(telemetry.inject()).get("traceparent")
        self.conn.execute(
            "INSERT INTO billing.subscriptions (subscription_id, opportunity_id, "
            "billing_account_id, account_id, legal_entity, currency, correlation_id, "
            "traceparent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                sub_id,
                s.opportunity_id,
                s.billing_account_id,
                s.account_id,
                s.legal_entity,
                s.currency,
                s.correlation_id,
                trace.decode() if trace else None,
            ),
        )
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO billing.subscription_phases (subscription_id, phase_no, line_id, "
                "sku, description, quantity, unit_price, billing_period, start_date, end_date) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        sub_id,
                        n,
                        p.line_id,
                        p.sku,
                        p.description,
                        p.quantity,
                        p.unit_price,
                        p.billing_period.value,
                        p.start_date,
                        p.end_date,
                    )
                    for n, p in enumerate(s.phases, 1)
                ],
            )
        return sub_id
