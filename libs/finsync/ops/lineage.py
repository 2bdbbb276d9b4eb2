"""Lineage: where one business document came from and what became of it, by any of its ids.

`trace(conn, "INV-0042")` finds what the id is (a CRM account, an opportunity, a subscription,
an invoice, a credit memo, a payment or a payout) and lays out its chain: CRM account ->
opportunity -> subscription -> invoice -> ERP posting -> cash (payments and their applications,
refunds, disputes, payouts). An account or a subscription fans out to everything under it; any
other document shows the path above it and everything below it. Each hop carries the events its
service took in (with their trace ids), its ERP journals, its dead letters and, where it did not
take effect, why: waiting in retry, a dead letter (its id, error class and reason), or not
received yet.

It reads the cross-reference store and the reference billing system and ERP: with another ERP
behind the port, its hops are the ones finsync's own tables know.
"""

from __future__ import annotations

import psycopg

from finsync.contract.topics import SERVICES
from finsync.ops import lineage_cash as cash
from finsync.ops import lineage_hops as hops
from finsync.ops.lineage_evidence import gather
from finsync.ops.lineage_model import (
    FAN_OUT,
    KIND_OF_TOPIC,
    MAX_HOPS,
    Builder,
    DeadLetterRef,
    EventRef,
    Hop,
    JournalLine,
    JournalRef,
    Lineage,
    Missing,
    Waiting,
    source_of,
)
from finsync.runtime.parking import key_hash

__all__ = [
    "DeadLetterRef",
    "EventRef",
    "Hop",
    "JournalLine",
    "JournalRef",
    "Lineage",
    "Missing",
    "Waiting",
    "identify",
    "trace",
]

# What an id is, by where it is kept; the first that knows it wins.
_IDENTIFY = """
SELECT kind FROM (
    SELECT 1, 'account' FROM finsync.account_xref WHERE account_id = %(id)s
    UNION ALL SELECT 2, 'opportunity' FROM billing.subscriptions WHERE opportunity_id = %(id)s
    UNION ALL SELECT 3, 'subscription' FROM billing.subscriptions WHERE subscription_id = %(id)s
    UNION ALL SELECT 4, 'invoice' FROM billing.invoices WHERE invoice_id = %(id)s
    UNION ALL SELECT 5, 'invoice' FROM erp.ar_open_items WHERE invoice_id = %(id)s
    UNION ALL SELECT 6, 'credit-memo' FROM billing.credit_memos WHERE credit_memo_id = %(id)s
    UNION ALL SELECT 7, 'credit-memo' FROM erp.ar_credits WHERE credit_memo_id = %(id)s
    UNION ALL SELECT 8, 'payment' FROM erp.payments WHERE payment_id = %(id)s
    UNION ALL SELECT 9, 'payout' FROM erp.payouts WHERE payout_id = %(id)s
    UNION ALL SELECT 10, 'refund' FROM erp.refunds WHERE refund_id = %(id)s
    UNION ALL SELECT 11, 'dispute' FROM erp.disputes WHERE dispute_id = %(id)s
    UNION ALL SELECT 12, 'account' FROM erp.customers WHERE account_id = %(id)s
    UNION ALL SELECT 13, 'account' FROM billing.accounts WHERE account_id = %(id)s
) AS k(o, kind) ORDER BY o LIMIT 1
"""


def identify(conn: psycopg.Connection, business_id: str) -> str | None:
    """What kind of document the id names, or None if finsync has never seen it. A document
    that did not take effect is known by its dead letters or its records waiting in retry."""
    row = conn.execute(_IDENTIFY, {"id": business_id}).fetchone()
    if row is not None:
        return str(row[0])
    topic = conn.execute(
        "SELECT source_topic FROM finsync.dead_letters "
        "WHERE md5(message_key) = md5(%s) AND message_key = %s ORDER BY id DESC LIMIT 1",
        (business_id, business_id),
    ).fetchone()
    if topic is None:
        topic = conn.execute(
            "SELECT origin_topic FROM finsync.parked WHERE service = ANY(%s) AND key_hash = %s "
            "ORDER BY seq LIMIT 1",
            (list(SERVICES), key_hash(business_id.encode())),
        ).fetchone()
    return KIND_OF_TOPIC.get(str(topic[0])) if topic else None


def trace(
    conn: psycopg.Connection,
    business_id: str,
    fan_out: int = FAN_OUT,
    max_hops: int = MAX_HOPS,
) -> Lineage | None:
    """The lineage of the document with this id, or None if no part of finsync knows it."""
    kind = identify(conn, business_id)
    if kind is None:
        return None
    b = Builder(fan_out, max_hops)
    _lay_out(b, conn, kind, business_id)
    gather(conn, b)
    return Lineage(business_id, kind, b.hops, b.capped)


def _lay_out(b: Builder, conn: psycopg.Connection, kind: str, id_: str) -> None:
    if kind == "account":
        hops.account(b, conn, id_, None, deep=True)
    elif kind == "opportunity":
        hops.opportunity(b, conn, id_, _account_of_opportunity(b, conn, id_), deep=True)
    elif kind == "subscription":
        row = conn.execute(
            "SELECT opportunity_id FROM billing.subscriptions WHERE subscription_id = %s", (id_,)
        ).fetchone()
        assert row is not None  # identified by this very row
        above = hops.opportunity(b, conn, row[0], _account_of_opportunity(b, conn, row[0]), False)
        hops.subscription(b, conn, id_, above, deep=True)
    elif kind == "invoice":
        hops.invoice(b, conn, id_, _above_invoice(b, conn, id_), deep=True)
    elif kind == "credit-memo":
        invoice = conn.execute(
            "SELECT invoice_id FROM billing.credit_memos WHERE credit_memo_id = %(id)s "
            "UNION SELECT invoice_id FROM erp.ar_credits WHERE credit_memo_id = %(id)s",
            {"id": id_},
        ).fetchone()
        parent = None
        if invoice is not None:
            _, parent = hops.invoice(
                b, conn, invoice[0], _above_invoice(b, conn, invoice[0]), False
            )
        hops.credit_memo(b, conn, id_, parent)
    elif kind in ("payment", "refund", "dispute"):
        _cash(b, conn, kind, id_)
    elif kind == "payout":
        cash.payout(b, conn, id_, None, deep=True)


def _account_of_opportunity(b: Builder, conn: psycopg.Connection, opportunity: str) -> int | None:
    row = conn.execute(
        "SELECT account_id FROM billing.subscriptions WHERE opportunity_id = %s", (opportunity,)
    ).fetchone()
    return hops.account(b, conn, row[0], None, deep=False) if row else None


def _above_invoice(b: Builder, conn: psycopg.Connection, invoice: str) -> int | None:
    """The path above an invoice: account -> opportunity -> subscription when billing issued it
    for a subscription, else the ERP's account of it; returns the hop it hangs under."""
    row = conn.execute(
        "SELECT s.account_id, s.opportunity_id, s.subscription_id FROM billing.invoices i "
        "JOIN billing.subscriptions s USING (subscription_id) WHERE i.invoice_id = %s",
        (invoice,),
    ).fetchone()
    if row is not None:
        account = hops.account(b, conn, row[0], None, deep=False)
        opportunity = hops.opportunity(b, conn, row[1], account, deep=False)
        return hops.subscription(b, conn, row[2], opportunity, deep=False)
    posted = conn.execute(
        "SELECT account_id FROM erp.ar_open_items WHERE invoice_id = %s", (invoice,)
    ).fetchone()
    return hops.account(b, conn, posted[0], None, deep=False) if posted else None


def _cash(b: Builder, conn: psycopg.Connection, kind: str, id_: str) -> None:
    """A payment under its payer, with the invoices it paid; a refund or a dispute under its
    payment."""
    payment: str | None = id_
    if kind != "payment":
        row = conn.execute(
            "SELECT payment_id FROM erp.refunds WHERE refund_id = %(id)s "
            "UNION ALL SELECT payment_id FROM erp.disputes WHERE dispute_id = %(id)s",
            {"id": id_},
        ).fetchone()
        payment = row[0] if row else None
    payer = None
    if payment is not None:
        row = conn.execute(
            "SELECT account_id FROM erp.payments WHERE payment_id = %s", (payment,)
        ).fetchone()
        payer = hops.account(b, conn, row[0], None, deep=False) if row else None
    if payment is not None:
        cash.payment(b, conn, payment, payer, deep=True, applications=True)
    else:  # a refund or dispute known only by its dead letters or retries
        b.add(None, kind, id_, "not booked", source_of(kind, id_, took_effect=False))
