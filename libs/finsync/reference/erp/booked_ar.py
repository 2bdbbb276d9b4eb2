"""Invoices' AR in functional currency, as the reference ERP booked it: the rate each foreign
invoice's journal booked AR at, and the functional amount still open (domain/realised_fx.py).

An invoice's functional AR is its journal's, less its credit memos' and the customer credit it
used (journals of one invoice each: read from the ledger), less what payments settled, each at
the booked rate (rounded, as realised_fx relieves a share). A payment journal may relieve
several invoices, so those shares are recomputed rather than read. The relief that cleared an
invoice took all that was open, so a cleared invoice has nothing open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

import psycopg

from finsync.contract.events import JournalLine
from finsync.domain.accounting import ACCOUNTS_RECEIVABLE, UNAPPLIED_CASH, ZERO, Journal
from finsync.domain.fx import round_to
from finsync.domain.realised_fx import BookedAr, Relief, carry_rate, relieve_at_booked_rates
from finsync.ports.erp import CashApplication, HeldCashApplication, InvoiceApplication

# Per invoice whose journal is in another currency than its entity's functional one.
BOOKED = (
    "SELECT a.invoice_id, a.legal_entity, a.currency, e.functional_currency, "
    "  (SELECT max(l.rate) FROM erp.journal_lines l WHERE l.entry_id = a.journal_entry_id "
    "   AND l.account_code = %(ar)s AND l.debit > 0), "
    "  a.open_amount, "
    "  (SELECT COALESCE(sum(l.functional_debit - l.functional_credit), 0) "
    "   FROM erp.journal_lines l WHERE l.account_code = %(ar)s AND l.entry_id IN ("
    "     SELECT a.journal_entry_id "
    "     UNION ALL SELECT c.journal_entry_id FROM erp.ar_credits c "
    "       WHERE c.invoice_id = a.invoice_id "
    "     UNION ALL SELECT u.journal_entry_id FROM erp.customer_credits u "
    "       WHERE u.invoice_id = a.invoice_id AND u.kind = 'USED')), "
    "  (SELECT array_agg(p.applied_amount + p.written_off_amount) "
    "   FROM erp.payment_applications p WHERE p.invoice_id = a.invoice_id) "
    "FROM erp.ar_open_items a JOIN erp.journal_entries e ON e.entry_id = a.journal_entry_id "
    "WHERE e.currency <> e.functional_currency "
)


def _booked(row: tuple[object, ...]) -> tuple[str, str, BookedAr] | None:
    invoice_id, entity, currency, functional, rate, open_, ar, settled = row
    if rate is None:  # an invoice with nothing on AR
        return None
    assert isinstance(rate, Decimal) and isinstance(open_, Decimal) and isinstance(ar, Decimal)
    fc = str(functional)
    paid = sum((round_to(s * rate, fc) for s in settled or ()), ZERO)  # type: ignore[attr-defined]
    functional_open = ar - paid if open_ else ZERO
    return str(entity), str(currency), BookedAr(str(invoice_id), fc, rate, open_, functional_open)


def booked(conn: psycopg.Connection, invoice_ids: Sequence[str]) -> dict[str, BookedAr]:
    """The foreign invoices among these, by id; invoices in the functional currency are left
    out (they need no carried rate)."""
    if not invoice_ids:
        return {}
    rows = conn.execute(
        BOOKED + "AND a.invoice_id = ANY(%(ids)s)",
        {"ar": ACCOUNTS_RECEIVABLE, "ids": list(invoice_ids)},
    ).fetchall()
    return {x[2].invoice_id: x[2] for x in map(_booked, rows) if x is not None}


def relieve(conn: psycopg.Connection, journal: Journal, reliefs: Sequence[Relief]) -> Journal:
    """The journal with its AR credits at the booked rates of the foreign invoices it relieves
    (read before their open amounts change)."""
    found = booked(conn, [r.invoice_id for r in reliefs])
    if not found:
        return journal
    return replace(journal, lines=relieve_at_booked_rates(journal.lines, reliefs, found))


def held_cash_rate(conn: psycopg.Connection, payment_id: str) -> Decimal | None:
    """The rate the payment's journal credited its unapplied cash at, when that journal is in
    another currency than the functional one (None otherwise)."""
    row = conn.execute(
        "SELECT max(l.rate) FROM erp.payments p "
        "JOIN erp.journal_entries e ON e.entry_id = p.journal_entry_id "
        "JOIN erp.journal_lines l ON l.entry_id = e.entry_id "
        "WHERE p.payment_id = %s AND e.currency <> e.functional_currency "
        "AND l.account_code = %s AND l.credit > 0",
        (payment_id, UNAPPLIED_CASH),
    ).fetchone()
    return row[0] if row else None


def relieve_held_cash(
    conn: psycopg.Connection, journal: Journal, a: HeldCashApplication
) -> Journal:
    """Held cash applied later: AR at the invoice's booked rate, 2100 at the payment's."""
    journal = relieve(
        conn, journal, [Relief(a.invoice_id, a.applied_amount + a.written_off_amount)]
    )
    rate = held_cash_rate(conn, a.payment_id)
    if rate is None:
        return journal
    return replace(journal, lines=carry_rate(journal.lines, UNAPPLIED_CASH, rate))


def of_payment(a: CashApplication) -> list[Relief]:
    each = a.applications or (
        (InvoiceApplication(a.invoice_id, a.applied_amount, a.written_off_amount),)
        if a.invoice_id is not None
        else ()
    )
    return [Relief(x.invoice_id, x.settles) for x in each]


def of_credit_memo(invoice_id: str, journal: Journal) -> list[Relief]:
    return [Relief(invoice_id, sum((x.credit for x in journal.lines if _ar(x)), ZERO))]


def _ar(x: JournalLine) -> bool:
    return x.account_code == ACCOUNTS_RECEIVABLE


def foreign(conn: psycopg.Connection, entity: str | None) -> list[tuple[str, str, BookedAr]]:
    """(entity, currency, its AR) of every foreign invoice, of one entity or all."""
    rows = conn.execute(
        BOOKED + "AND (%(entity)s::text IS NULL OR a.legal_entity = %(entity)s)",
        {"ar": ACCOUNTS_RECEIVABLE, "entity": entity},
    ).fetchall()
    return [x for x in map(_booked, rows) if x is not None]


def functional_open(
    conn: psycopg.Connection, entity: str | None
) -> dict[tuple[str, str, str], Decimal]:
    """(entity, currency, functional currency) -> functional AR the foreign invoices have open."""
    out: dict[tuple[str, str, str], Decimal] = {}
    for e, c, ar in foreign(conn, entity):
        key = (e, c, ar.functional_currency)
        out[key] = out.get(key, ZERO) + ar.functional_open
    return out
