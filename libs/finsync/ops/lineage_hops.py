"""The hops of a lineage, read from the systems of record: the cross-reference store, the
reference billing system (schema billing) and the reference ERP (schema erp).

Each function adds one document's hop and, when `deep`, the documents that follow from it, at
most FAN_OUT per kind; ancestors are added shallow, as a path. Evidence (inbox rows, journals,
dead letters, retries) is read afterwards for all hops at once (lineage_evidence).
"""

from __future__ import annotations

import psycopg

from finsync.ops.lineage_cash import payment
from finsync.ops.lineage_model import Builder, Source, one, some, source_of, trace_of_traceparent

# --- CRM ------------------------------------------------------------------------------------


def account(
    b: Builder, conn: psycopg.Connection, account_id: str, parent: int | None, deep: bool
) -> int:
    src = source_of("account", account_id)
    row = one(
        conn,
        "SELECT erp_customer_id, billing_account_id, version, match_rule, matched_account_id, "
        "currency, synced_at FROM finsync.account_xref WHERE account_id = %s",
        account_id,
    )
    if row is not None:
        customer, billing_account, version, rule, matched, currency, synced = row
        state = f"synced v{version}: ERP customer {customer}, billing account {billing_account}"
        if rule:
            state += f" (linked to account {matched}: same {rule.lower().replace('_', ' and ')})"
        n = b.add(parent, "account", account_id, state, src, at=synced, currency=currency)
    else:
        customer_row = one(
            conn,
            "SELECT customer_id, currency, created_at FROM erp.customers WHERE account_id = %s",
            account_id,
        )
        src.took_effect = customer_row is not None
        state = f"ERP customer {customer_row[0]}" if customer_row else "not synced"
        at, currency = (customer_row[2], customer_row[1]) if customer_row else (None, None)
        n = b.add(parent, "account", account_id, state, src, at=at, currency=currency)
    if deep:
        _account_children(b, conn, account_id, n)
    return n


def _account_children(b: Builder, conn: psycopg.Connection, account_id: str, n: int) -> None:
    for row in some(
        b,
        conn,
        n,
        "SELECT opportunity_id, count(*) OVER () FROM billing.subscriptions "
        "WHERE account_id = %s ORDER BY created_at, opportunity_id LIMIT %s",
        account_id,
    ):
        if b.room():
            opportunity(b, conn, row[0], n, deep=True)
    # Invoices billed elsewhere than by a subscription of the reference billing system.
    for row in some(
        b,
        conn,
        n,
        "SELECT a.invoice_id, count(*) OVER () FROM erp.ar_open_items a WHERE a.account_id = %s "
        "AND NOT EXISTS (SELECT 1 FROM billing.invoices i WHERE i.invoice_id = a.invoice_id) "
        "ORDER BY a.issued_on, a.invoice_id LIMIT %s",
        account_id,
    ):
        if b.room() and not b.seen("invoice", row[0]):
            invoice(b, conn, row[0], n, deep=True)
    # Cash the account paid that no invoice has taken (whole or in part) yet.
    for row in some(
        b,
        conn,
        n,
        "SELECT payment_id, count(*) OVER () FROM erp.payments WHERE account_id = %s "
        "AND unapplied_open > 0 ORDER BY settled_at, payment_id LIMIT %s",
        account_id,
    ):
        if b.room() and not b.seen("payment", row[0]):
            payment(b, conn, row[0], n, deep=True, applications=True)


def opportunity(
    b: Builder, conn: psycopg.Connection, opportunity_id: str, parent: int | None, deep: bool
) -> int:
    src = source_of("opportunity", opportunity_id)
    row = one(
        conn,
        "SELECT subscription_id FROM billing.subscriptions WHERE opportunity_id = %s",
        opportunity_id,
    )
    src.took_effect = row is not None
    state = f"activated: subscription {row[0]}" if row else "no subscription"
    n = b.add(parent, "opportunity", opportunity_id, state, src)
    if deep and row is not None:
        subscription(b, conn, row[0], n, deep=True)
    return n


# --- billing --------------------------------------------------------------------------------


def subscription(
    b: Builder, conn: psycopg.Connection, subscription_id: str, parent: int | None, deep: bool
) -> int:
    row = one(
        conn,
        "SELECT s.billing_account_id, s.legal_entity, s.currency, s.created_at, s.traceparent, "
        "(SELECT count(*) FROM billing.subscription_phases p "
        "WHERE p.subscription_id = s.subscription_id) "
        "FROM billing.subscriptions s WHERE s.subscription_id = %s",
        subscription_id,
    )
    assert row is not None, f"subscription {subscription_id} was found a moment ago"
    billing_account, entity, currency, created, traceparent, phases = row
    plural = "s" if phases != 1 else ""
    state = f"{phases} phase{plural} for {entity}, billing account {billing_account}"
    src = Source(trace_hint=trace_of_traceparent(traceparent))
    n = b.add(parent, "subscription", subscription_id, state, src, at=created, currency=currency)
    if deep:
        for r in some(
            b,
            conn,
            n,
            "SELECT invoice_id, count(*) OVER () FROM billing.invoices WHERE subscription_id = %s "
            "ORDER BY billing_date, invoice_id LIMIT %s",
            subscription_id,
        ):
            if b.room():
                invoice(b, conn, r[0], n, deep=True)
    return n


def invoice(
    b: Builder, conn: psycopg.Connection, invoice_id: str, parent: int | None, deep: bool
) -> tuple[int, int]:
    """The invoice's hop, and its ERP posting's when it is posted; returns both indexes (the
    invoice's twice when it is not posted): what follows hangs under the second."""
    billed = one(
        conn,
        "SELECT invoice_number, issued_on, total, currency, created_at FROM billing.invoices "
        "WHERE invoice_id = %s",
        invoice_id,
    )
    posted = one(
        conn,
        "SELECT document_id, invoice_number, issued_on, original_amount, open_amount, currency, "
        "status, journal_entry_id FROM erp.ar_open_items WHERE invoice_id = %s",
        invoice_id,
    )
    src = source_of("invoice", invoice_id)
    src.took_effect = posted is not None
    if billed is not None:
        number, issued, total, currency, created = billed
        state = f"issued {number} on {issued}" + ("" if posted else ", not posted")
        n = b.add(parent, "invoice", invoice_id, state, src, created, total, currency)
    elif posted is not None:
        state = f"issued {posted[1]} on {posted[2]}"
        n = b.add(parent, "invoice", invoice_id, state, src, None, posted[3], posted[5])
    else:
        n = b.add(parent, "invoice", invoice_id, "not posted", src)
    effect = n
    if posted is not None:
        document, _, _, original, open_amount, currency, status, journal = posted
        state = f"{status}: {original} {currency}, {open_amount} open"
        effect = b.add(
            n,
            "posting",
            document,
            state,
            Source(journal_ids=[journal]),
            amount=original,
            currency=currency,
        )
    if deep:
        _invoice_children(b, conn, invoice_id, effect, posted is not None)
    return n, effect


def _invoice_children(
    b: Builder, conn: psycopg.Connection, invoice_id: str, parent: int, posted: bool
) -> None:
    for row in some(
        b,
        conn,
        parent,
        "SELECT credit_memo_id, count(*) OVER () FROM (SELECT credit_memo_id "
        "FROM billing.credit_memos WHERE invoice_id = %s UNION SELECT credit_memo_id "
        "FROM erp.ar_credits WHERE invoice_id = %s) c ORDER BY credit_memo_id LIMIT %s",
        invoice_id,
        invoice_id,
    ):
        if b.room():
            credit_memo(b, conn, row[0], parent)
    if posted:
        for pay, kind, applied, written_off, journal, _at, _ in some(
            b,
            conn,
            parent,
            "SELECT payment_id, kind, applied_amount, written_off_amount, journal_entry_id, "
            "applied_at, count(*) OVER () FROM erp.payment_applications WHERE invoice_id = %s "
            "ORDER BY applied_at, payment_id LIMIT %s",
            invoice_id,
        ):
            if b.room() and not b.seen("payment", pay):
                note = f"applied {applied}" + (f", wrote off {written_off}" if written_off else "")
                payment(
                    b,
                    conn,
                    pay,
                    parent,
                    deep=True,
                    note=f"{note} ({kind.lower()})",
                    journal=journal,
                )
        return
    # Cash that came before the invoice: booked as a deposit earmarked for it.
    for pay, amount, _ in some(
        b,
        conn,
        parent,
        "SELECT payment_id, amount, count(*) OVER () FROM erp.payment_earmarks "
        "WHERE invoice_id = %s AND NOT applied ORDER BY payment_id LIMIT %s",
        invoice_id,
    ):
        if b.room() and not b.seen("payment", pay):
            payment(b, conn, pay, parent, deep=True, note=f"{amount} earmarked for this invoice")


def credit_memo(b: Builder, conn: psycopg.Connection, memo_id: str, parent: int | None) -> int:
    posted = one(
        conn,
        "SELECT c.amount, a.currency, c.journal_entry_id FROM erp.ar_credits c "
        "JOIN erp.ar_open_items a USING (invoice_id) WHERE c.credit_memo_id = %s",
        memo_id,
    )
    billed = one(
        conn,
        "SELECT m.total, i.currency, m.issued_on FROM billing.credit_memos m "
        "JOIN billing.invoices i USING (invoice_id) WHERE m.credit_memo_id = %s",
        memo_id,
    )
    src = source_of("credit-memo", memo_id)
    src.took_effect = posted is not None
    if posted is not None:
        src.journal_ids = [posted[2]]
        return b.add(
            parent,
            "credit-memo",
            memo_id,
            f"posted: {posted[0]} {posted[1]} credited",
            src,
            amount=posted[0],
            currency=posted[1],
        )
    if billed is not None:
        return b.add(
            parent,
            "credit-memo",
            memo_id,
            f"issued on {billed[2]}, not posted",
            src,
            amount=billed[0],
            currency=billed[1],
        )
    return b.add(parent, "credit-memo", memo_id, "not posted", src)
