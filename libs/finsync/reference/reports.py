"""What finance reads back from the reference ERP: trial balance, postings, receivables."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg


@dataclass(frozen=True)
class TrialBalanceRow:
    legal_entity: str
    currency: str
    account_code: str
    account_name: str
    debit: Decimal
    credit: Decimal


def trial_balance(conn: psycopg.Connection) -> list[TrialBalanceRow]:
    rows = conn.execute(
        "SELECT e.legal_entity, e.currency, a.code, a.name, sum(l.debit), sum(l.credit) "
        "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
        "JOIN erp.accounts a ON a.code = l.account_code "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3"
    ).fetchall()
    return [TrialBalanceRow(*r) for r in rows]


def unbalanced_entries(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM (SELECT entry_id FROM erp.journal_lines GROUP BY entry_id "
        "HAVING sum(debit) <> sum(credit)) x"
    ).fetchone()
    return int(row[0]) if row else 0


def postings_by_key(conn: psycopg.Connection, keys: list[str]) -> dict[str, int]:
    """How many journal entries exist for each idempotency key."""
    rows = conn.execute(
        "SELECT idempotency_key, count(*) FROM erp.journal_entries "
        "WHERE idempotency_key = ANY(%s) GROUP BY 1",
        (keys,),
    ).fetchall()
    return {k: int(n) for k, n in rows}


def open_receivables(
    conn: psycopg.Connection, invoice_ids: list[str]
) -> list[tuple[str, str, Decimal, Decimal]]:
    """(legal entity, currency, original, open) summed over the given invoices."""
    return [
        (e, c, o, p)
        for e, c, o, p in conn.execute(
            "SELECT legal_entity, currency, sum(original_amount), sum(open_amount) "
            "FROM erp.ar_open_items WHERE invoice_id = ANY(%s) GROUP BY 1, 2 ORDER BY 1, 2",
            (invoice_ids,),
        ).fetchall()
    ]


# Order to cash, for the ids of one run (a LIKE pattern such as '%-s7ab12-%').


@dataclass(frozen=True)
class AccountsSynced:
    synced: int
    customers: int  # distinct ERP customers behind them
    linked: int  # duplicates linked to the customer of another account of the run
    linked_earlier: int  # ... of an account synced before the run


def accounts_synced(conn: psycopg.Connection, like: str) -> AccountsSynced:
    row = conn.execute(
        "SELECT count(*), count(DISTINCT erp_customer_id), "
        "count(matched_account_id) FILTER (WHERE matched_account_id LIKE %s), "
        "count(matched_account_id) FILTER (WHERE matched_account_id NOT LIKE %s) "
        "FROM finsync.account_xref WHERE account_id LIKE %s",
        (like, like, like),
    ).fetchone()
    assert row is not None
    return AccountsSynced(*row)


def customer_of(conn: psycopg.Connection, like: str) -> dict[str, tuple[str, str | None]]:
    """CRM account -> (ERP customer, the account it was linked to as a duplicate)."""
    rows = conn.execute(
        "SELECT account_id, erp_customer_id, matched_account_id FROM finsync.account_xref "
        "WHERE account_id LIKE %s",
        (like,),
    ).fetchall()
    return {a: (c, m) for a, c, m in rows}


@dataclass(frozen=True)
class OpportunityTrail:
    opportunity_id: str
    subscription_id: str | None
    invoices: int  # issued by billing
    posted: int  # of those, posted in the ERP


def opportunity_trails(
    conn: psycopg.Connection, opportunity_ids: list[str]
) -> list[OpportunityTrail]:
    """From closed-won opportunity to subscription, invoices and ERP postings."""
    rows = conn.execute(
        "SELECT o.id, s.subscription_id, count(i.invoice_id), count(a.invoice_id) "
        "FROM unnest(%s::text[]) AS o(id) "
        "LEFT JOIN billing.subscriptions s ON s.opportunity_id = o.id "
        "LEFT JOIN billing.invoices i ON i.subscription_id = s.subscription_id "
        "LEFT JOIN erp.ar_open_items a ON a.invoice_id = i.invoice_id "
        "GROUP BY 1, 2 ORDER BY 1",
        (opportunity_ids,),
    ).fetchall()
    return [OpportunityTrail(*r) for r in rows]


@dataclass(frozen=True)
class CustomerReceivable:
    customer_id: str
    name: str
    legal_entity: str
    currency: str
    invoiced: Decimal
    credited: Decimal
    paid: Decimal
    written_off: Decimal
    open: Decimal
    unapplied_cash: Decimal


def receivables_by_customer(conn: psycopg.Connection, like: str) -> list[CustomerReceivable]:
    """AR per ERP customer for the invoices of a run, largest open amount first; with the
    unapplied cash the customer holds."""
    rows = conn.execute(
        "WITH items AS ("
        "  SELECT x.erp_customer_id AS customer_id, a.legal_entity, a.currency, "
        "         a.original_amount, a.open_amount, a.paid_amount, a.written_off_amount, "
        "         COALESCE((SELECT sum(c.amount) FROM erp.ar_credits c "
        "                   WHERE c.invoice_id = a.invoice_id), 0) AS credited "
        "  FROM erp.ar_open_items a JOIN finsync.account_xref x USING (account_id) "
        "  WHERE a.invoice_id LIKE %s), "
        "cash AS (SELECT customer_id, currency, sum(unapplied_open) AS unapplied "
        "  FROM erp.payments WHERE payment_id LIKE %s GROUP BY 1, 2) "
        "SELECT i.customer_id, c.name, i.legal_entity, i.currency, sum(i.original_amount), "
        "       sum(i.credited), sum(i.paid_amount), sum(i.written_off_amount), "
        "       sum(i.open_amount), COALESCE(max(cash.unapplied), 0) "
        "FROM items i JOIN erp.customers c USING (customer_id) "
        "LEFT JOIN cash ON cash.customer_id = i.customer_id AND cash.currency = i.currency "
        "GROUP BY 1, 2, 3, 4 ORDER BY sum(i.open_amount) DESC, 1",
        (like, like),
    ).fetchall()
    return [CustomerReceivable(*r) for r in rows]


def ar_ledger_and_items(
    conn: psycopg.Connection, like: str
) -> tuple[dict[tuple[str, str], Decimal], dict[tuple[str, str], Decimal]]:
    """Per (legal entity, currency): net AR (1200) of the run's journals, and the sum of the
    run's open items. The general ledger agrees with the sub-ledger when they are equal."""
    ledger = {
        (e, c): amount
        for e, c, amount in conn.execute(
            "SELECT e.legal_entity, e.currency, sum(l.debit - l.credit) "
            "FROM erp.journal_lines l JOIN erp.journal_entries e USING (entry_id) "
            "WHERE l.account_code = '1200' AND e.idempotency_key LIKE %s GROUP BY 1, 2",
            (like,),
        ).fetchall()
    }
    items = {
        (e, c): amount
        for e, c, amount in conn.execute(
            "SELECT legal_entity, currency, sum(open_amount) FROM erp.ar_open_items "
            "WHERE invoice_id LIKE %s GROUP BY 1, 2",
            (like,),
        ).fetchall()
    }
    return ledger, items


def ar_discrepancies(conn: psycopg.Connection, like: str) -> list[tuple[str, Decimal, Decimal]]:
    """Invoices whose open amount is not original - credit memos - applied cash - write-offs
    - customer credit used + what refunds and lost disputes reopened, each recomputed from the
    documents themselves (of a credit memo above the open amount, only what was open):
    (invoice, expected open, open)."""
    rows = conn.execute(
        "SELECT a.invoice_id, a.original_amount "
        "  - COALESCE((SELECT sum(amount) FROM erp.ar_credits c "
        "              WHERE c.invoice_id = a.invoice_id), 0) "
        "  - COALESCE((SELECT sum(applied_amount + written_off_amount) "
        "              FROM erp.payment_applications p WHERE p.invoice_id = a.invoice_id), 0) "
        "  + COALESCE((SELECT sum(amount) FROM erp.payment_reversals r "
        "              WHERE r.invoice_id = a.invoice_id), 0) "
        # Credit left by its memos back (+), credit used on it off (-).
        "  + COALESCE((SELECT sum(amount) FROM erp.customer_credits u "
        "              WHERE u.invoice_id = a.invoice_id), 0) AS expected, a.open_amount "
        "FROM erp.ar_open_items a WHERE a.invoice_id LIKE %s",
        (like,),
    ).fetchall()
    return [(i, e, o) for i, e, o in rows if e != o]


def payments_by_status(conn: psycopg.Connection, like: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM erp.payments WHERE payment_id LIKE %s GROUP BY 1 "
        "UNION ALL SELECT 'WRITTEN_OFF', count(*) FROM erp.payments "
        "WHERE payment_id LIKE %s AND written_off_amount > 0",
        (like, like),
    ).fetchall()
    return {s: int(n) for s, n in rows}


def duplicate_effects(conn: psycopg.Connection, like: str) -> list[str]:
    """Business keys of a run with more than one journal entry (there must be none)."""
    rows = conn.execute(
        "SELECT idempotency_key FROM erp.journal_entries WHERE idempotency_key LIKE %s "
        "GROUP BY 1 HAVING count(*) > 1",
        (like,),
    ).fetchall()
    return [r[0] for r in rows]
