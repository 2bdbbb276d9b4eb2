"""The reference ERP's GL mapping (migration 0015): its rules, listed and loaded.

Postings read the active rules once per unit of work (ReferenceErp). A load takes the rules
table exclusively, so it waits for the postings in flight that read the rules and the next
ones wait for it: a batch posts wholly under the old mapping or wholly under the new one, and
a rule deleted because no posting used it cannot be taken up by a posting meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from finsync.domain.gl_mapping import GlMapping, RevenueRule, Rule, TaxRule
from finsync.domain.gl_mapping_file import Account, Existing, MappingFile, Plan, plan

_COLUMNS = (
    "rule_id, kind, sku, revenue_account, deferred_account, legal_entity, tax_rate, "
    "tax_account, active, description"
)
# A rule is used once a journal line or an invoice line names it.
_USED = (
    "EXISTS (SELECT 1 FROM erp.journal_lines l WHERE l.mapping_rule = r.rule_id) "
    "OR EXISTS (SELECT 1 FROM erp.ar_invoice_lines a WHERE a.mapping_rule = r.rule_id) "
    "OR EXISTS (SELECT 1 FROM erp.ar_invoice_lines a WHERE a.tax_rule = r.rule_id)"
)


def _rule(row: tuple[object, ...]) -> Rule:
    rule_id, kind, sku, revenue, deferred, entity, rate, tax, active, description = row
    if kind == "REVENUE":
        return RevenueRule(rule_id, sku, revenue, deferred, active, description)  # type: ignore[arg-type]
    return TaxRule(rule_id, entity, rate, tax, active, description)  # type: ignore[arg-type]


def active(conn: psycopg.Connection) -> GlMapping:
    """The rules postings go by: one query."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM erp.gl_mapping_rules WHERE active").fetchall()
    return GlMapping(_rule(r) for r in rows)


@dataclass(frozen=True)
class Listed:
    rule: Rule
    used: bool
    changed_at: datetime
    changed_by: str


def listing(conn: psycopg.Connection) -> list[Listed]:
    rows = conn.execute(
        f"SELECT {_COLUMNS}, {_USED}, changed_at, changed_by FROM erp.gl_mapping_rules r "
        "ORDER BY kind, NOT active, sku, legal_entity, tax_rate, rule_id"
    ).fetchall()
    return [Listed(_rule(r[:10]), r[10], r[11], r[12]) for r in rows]


def chart(conn: psycopg.Connection) -> dict[str, Account]:
    rows = conn.execute("SELECT code, name, kind FROM erp.accounts ORDER BY code").fetchall()
    return {code: Account(code, name, kind) for code, name, kind in rows}


def load(conn: psycopg.Connection, file: MappingFile, operator: str, dry_run: bool) -> Plan:
    """Make the ERP's mapping the file's, in the caller's transaction; raises MappingInvalid
    and changes nothing if the file may not be loaded. With `dry_run`, only the plan."""
    conn.execute("LOCK TABLE erp.gl_mapping_rules IN ACCESS EXCLUSIVE MODE")
    rows = conn.execute(f"SELECT {_COLUMNS}, {_USED} FROM erp.gl_mapping_rules r").fetchall()
    existing = {r[0]: Existing(_rule(r[:10]), r[10]) for r in rows}
    changes = plan(file, chart(conn), existing)
    if dry_run:
        return changes
    with conn.cursor() as cur:
        if changes.accounts_added:
            cur.executemany(
                "INSERT INTO erp.accounts (code, name, kind) VALUES (%s, %s, %s)",
                [(a.code, a.name, a.kind) for a in changes.accounts_added],
            )
        if changes.accounts_renamed:
            cur.executemany(
                "UPDATE erp.accounts SET name = %s WHERE code = %s",
                [(a.name, a.code) for a in changes.accounts_renamed],
            )
        if changes.deleted:
            cur.execute(
                "DELETE FROM erp.gl_mapping_rules WHERE rule_id = ANY(%s)", (list(changes.deleted),)
            )
        upserts = [*changes.added, *changes.changed, *changes.deactivated]
        if upserts:
            cur.executemany(
                f"INSERT INTO erp.gl_mapping_rules ({_COLUMNS}, changed_by) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (rule_id) DO UPDATE SET kind = excluded.kind, sku = excluded.sku, "
                "revenue_account = excluded.revenue_account, "
                "deferred_account = excluded.deferred_account, "
                "legal_entity = excluded.legal_entity, tax_rate = excluded.tax_rate, "
                "tax_account = excluded.tax_account, active = excluded.active, "
                "description = excluded.description, changed_at = now(), "
                "changed_by = excluded.changed_by",
                [(*_values(r), operator) for r in upserts],
            )
    return changes


def _values(r: Rule) -> tuple[object, ...]:
    if isinstance(r, RevenueRule):
        head: tuple[object, ...] = ("REVENUE", r.sku, r.revenue_account, r.deferred_account)
        return (r.rule_id, *head, None, None, None, r.active, r.description)
    return (r.rule_id, "TAX", None, None, None, r.legal_entity, r.rate, r.tax_account,
            r.active, r.description)  # fmt: skip
