"""The cash hops of a lineage, from the reference ERP: a payment, what it was applied to,
its refunds and disputes, and the payouts that brought it to the bank."""

from __future__ import annotations

import psycopg

from finsync.ops.lineage_model import Builder, Source, one, some, source_of


def payment(
    b: Builder,
    conn: psycopg.Connection,
    payment_id: str,
    parent: int | None,
    deep: bool,
    note: str = "",
    journal: str | None = None,
    applications: bool = False,
) -> int:
    """A payment, with `note` saying what it did for its parent (an application, an earmark)
    and `journal` the parent's own journal of it; `applications` lists the invoices it paid."""
    row = one(
        conn,
        "SELECT amount, currency, status, method, cash_account, unapplied_open, review_reason, "
        "journal_entry_id, settled_at FROM erp.payments WHERE payment_id = %s",
        payment_id,
    )
    src = source_of("payment", payment_id)
    src.took_effect = row is not None
    if row is None:
        return b.add(parent, "payment", payment_id, "not applied", src)
    amount, currency, status, method, cash_account, unapplied, review, own_journal, settled = row
    state = f"{amount} {currency} by {method} into account {cash_account}, settled {status}"
    if unapplied:
        state += f", {unapplied} unapplied"
    if review:
        state += ", held for review"
    src.journal_ids = [own_journal] + ([journal] if journal and journal != own_journal else [])
    n = b.add(
        parent,
        "payment",
        payment_id,
        f"{note}; {state}" if note else state,
        src,
        at=settled,
        amount=amount,
        currency=currency,
    )
    if deep:
        _cash_children(b, conn, payment_id, n, applications)
    return n


def _cash_children(
    b: Builder, conn: psycopg.Connection, payment_id: str, n: int, applications: bool
) -> None:
    if applications:
        for inv, kind, applied, journal, at, _ in some(
            b,
            conn,
            n,
            "SELECT invoice_id, kind, applied_amount, journal_entry_id, applied_at, "
            "count(*) OVER () FROM erp.payment_applications WHERE payment_id = %s "
            "ORDER BY applied_at, invoice_id LIMIT %s",
            payment_id,
        ):
            if b.room():
                b.add(
                    n,
                    "application",
                    inv,
                    f"applied {applied} to invoice {inv} ({kind.lower()})",
                    Source(journal_ids=[journal]),
                    at=at,
                    amount=applied,
                )
    for refund_id, amount, currency, journal, at, _ in some(
        b,
        conn,
        n,
        "SELECT refund_id, amount, currency, journal_entry_id, refunded_at, count(*) OVER () "
        "FROM erp.refunds WHERE payment_id = %s ORDER BY refunded_at, refund_id LIMIT %s",
        payment_id,
    ):
        if b.room():
            src = source_of("refund", refund_id)
            src.journal_ids = [journal]
            b.add(
                n, "refund", refund_id, f"refunded {amount} {currency}", src, at, amount, currency
            )
    for dispute_id, status, amount, currency, opened, closed, at, _ in some(
        b,
        conn,
        n,
        "SELECT dispute_id, status, amount, currency, opened_entry_id, closed_entry_id, "
        "opened_at, count(*) OVER () FROM erp.disputes WHERE payment_id = %s "
        "ORDER BY opened_at, dispute_id LIMIT %s",
        payment_id,
    ):
        if b.room():
            src = source_of("dispute", dispute_id)
            src.journal_ids = [j for j in (opened, closed) if j]
            b.add(
                n,
                "dispute",
                dispute_id,
                f"{status}: {amount} {currency} disputed",
                src,
                at,
                amount,
                currency,
            )
    for (payout_id,) in conn.execute(
        "SELECT payout_id FROM erp.payout_items WHERE matched_kind = 'PAYMENT' AND matched_id = %s",
        (payment_id,),
    ).fetchall():
        if b.room() and not b.seen("payout", payout_id):
            payout(b, conn, payout_id, n, deep=False)


def payout(
    b: Builder, conn: psycopg.Connection, payout_id: str, parent: int | None, deep: bool
) -> int:
    row = one(
        conn,
        "SELECT status, amount, currency, arrival_date, journal_entry_id, booked_at "
        "FROM erp.payouts WHERE payout_id = %s",
        payout_id,
    )
    src = source_of("payout", payout_id)
    src.took_effect = row is not None
    if row is None:
        return b.add(parent, "payout", payout_id, "not reconciled", src)
    status, amount, currency, arrival, journal, booked = row
    src.journal_ids = [journal]
    state = f"{status}: {amount} {currency} to the bank on {arrival}"
    n = b.add(parent, "payout", payout_id, state, src, booked, amount, currency)
    if deep:
        for line, kind, reference, net, matched_kind, matched_id, _ in some(
            b,
            conn,
            n,
            "SELECT line_no, type, reference_id, net, matched_kind, matched_id, count(*) OVER () "
            "FROM erp.payout_items WHERE payout_id = %s ORDER BY line_no LIMIT %s",
            payout_id,
        ):
            if b.room():
                what = f"matched {matched_kind.lower()} {matched_id}" if matched_id else "unmatched"
                b.add(
                    n,
                    "payout-item",
                    reference or f"{payout_id}#{line}",
                    f"{kind.lower()} line {line}: net {net}, {what}",
                    amount=net,
                    currency=currency,
                )
    return n
