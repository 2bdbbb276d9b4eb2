"""The cross-reference on PostgreSQL (finsync.account_xref), behind the CrossReference port."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from finsync.ports.crossref import AccountLink, MatchRule

_COLUMNS = (
    "account_id, erp_customer_id, billing_account_id, version, name, normalized_name, country, "
    "currency, legal_entity, tax_id, email_domain, parent_account_id, match_rule, "
    "matched_account_id"
)


def _link(row: tuple[object, ...]) -> AccountLink:
    link = AccountLink(*row)  # type: ignore[arg-type]
    return link if link.match_rule is None else replace(link, match_rule=MatchRule(link.match_rule))


class CrossReferenceStore:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def link(self, account_id: str, lock: bool = False) -> AccountLink | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM finsync.account_xref WHERE account_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (account_id,),
        ).fetchone()
        return None if row is None else _link(row)

    def match(
        self,
        tax_id: str | None,
        normalized_name: str,
        country: str,
        legal_entity: str,
        currency: str,
        account_id: str,
    ) -> AccountLink | None:
        # One lock for every match: accounts are few, and a duplicate created twice is not.
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('finsync.account_xref.match'))")
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM finsync.account_xref WHERE matched_account_id IS NULL "
            "AND account_id <> %s AND legal_entity = %s AND currency = %s "
            "AND ((tax_id IS NOT NULL AND tax_id = %s) "
            "     OR (normalized_name = %s AND country = %s "
            "         AND (tax_id IS NULL OR %s::text IS NULL))) "
            "ORDER BY (tax_id IS NOT DISTINCT FROM %s) DESC, synced_at LIMIT 1",
            (account_id, legal_entity, currency, tax_id, normalized_name, country, tax_id, tax_id),
        ).fetchone()
        return None if row is None else _link(row)

    def sharing(self, erp_customer_id: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT account_id FROM finsync.account_xref WHERE erp_customer_id = %s "
            "ORDER BY account_id",
            (erp_customer_id,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def save(self, link: AccountLink) -> bool:
        values = (
            link.account_id,
            link.erp_customer_id,
            link.billing_account_id,
            link.version,
            link.name,
            link.normalized_name,
            link.country,
            link.currency,
            link.legal_entity,
            link.tax_id,
            link.email_domain,
            link.parent_account_id,
            link.match_rule.value if link.match_rule else None,
            link.matched_account_id,
        )
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", ")[1:])
        saved = self.conn.execute(
            f"INSERT INTO finsync.account_xref ({_COLUMNS}) "
            f"VALUES ({', '.join(['%s'] * len(values))}) "
            f"ON CONFLICT (account_id) DO UPDATE SET {updates}, synced_at = now() "
            "WHERE finsync.account_xref.version < EXCLUDED.version RETURNING 1",
            values,
        ).fetchone()
        return saved is not None
