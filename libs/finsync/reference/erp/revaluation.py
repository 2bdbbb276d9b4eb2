"""`finsync erp revalue` in the reference ERP: open foreign AR of each entity at the as-of
rate (domain/revaluation.py), one journal per entity and currency and its reversal, posted
through the adapter, so closed periods move them as any journal (periods.py). Their keys make a
second run for the same entity and day post nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg

from finsync.domain import revaluation as rules
from finsync.reference.erp import booked_ar
from finsync.reference.erp.adapter import ReferenceErp
from finsync.reference.erp.fx import Converter


@dataclass(frozen=True)
class Done:
    revaluation: rules.Revaluation
    outcome: str  # POSTED, WOULD POST (dry run), ALREADY POSTED, NOTHING TO POST


def revalue(conn: psycopg.Connection, as_of: date, entity: str | None, dry_run: bool) -> list[Done]:
    """In the caller's transaction; a dry run posts nothing."""
    # Open on as-of: invoices posted by then (their own journal's date), at what is open now.
    groups: dict[tuple[str, str, str], list[tuple[Decimal, Decimal]]] = {}
    rows = conn.execute(
        "SELECT a.invoice_id, e.accounting_date FROM erp.ar_open_items a "
        "JOIN erp.journal_entries e ON e.entry_id = a.journal_entry_id "
        "WHERE a.open_amount > 0 AND (%(e)s::text IS NULL OR a.legal_entity = %(e)s)",
        {"e": entity},
    ).fetchall()
    issued: dict[str, date] = {r[0]: r[1] for r in rows}
    for e, c, ar in booked_ar.foreign(conn, entity):
        on = issued.get(ar.invoice_id)
        if ar.open_amount > 0 and on is not None and on <= as_of:
            groups.setdefault((e, c, ar.functional_currency), []).append(
                (ar.open_amount, ar.functional_open)
            )
    converter, erp = Converter(conn), ReferenceErp(conn)
    done = []
    for (e, c, fc), items in sorted(groups.items()):
        rate = converter.quote(c, fc, as_of).rate
        r = rules.revalue(e, c, fc, as_of, rate, items)
        pair = rules.journals(r)
        if pair is None:
            done.append(Done(r, "NOTHING TO POST"))
        elif _posted(conn, rules.key(r)):
            done.append(Done(r, "ALREADY POSTED"))
        elif dry_run:
            done.append(Done(r, "WOULD POST"))
        else:
            for journal in pair:
                erp.post_journal(journal)
            done.append(Done(r, "POSTED"))
    erp.flush()
    return done


def _posted(conn: psycopg.Connection, key: str) -> bool:
    row = conn.execute("SELECT 1 FROM erp.journal_entries WHERE idempotency_key = %s", (key,))
    return row.fetchone() is not None
