"""Three-way checks, CRM ↔ billing ↔ ERP: every document one system sent took effect in the next.

CRM's and the gateways' documents are read from their topics (what they published is their
record); billing's and the ERP's from their schemas. A document missing downstream that a
dead letter explains is held, with the dead letter's reason; one that nothing explains is a
break.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import psycopg

from finsync.books.findings import Check, Finding
from finsync.contract.events import BillingPeriod, OpportunityClosed, PaymentSettled
from finsync.domain.accounting import fmt
from finsync.domain.billing_schedule import billing_periods

OPPORTUNITIES = Check(
    "opportunity-subscription", "every closed-won opportunity has a subscription", "three-way"
)
DUE_PERIODS = Check("due-periods-invoiced", "every billing period due has an invoice", "three-way")
POSTINGS = Check(
    "invoice-posted", "every invoice and credit memo has a posting of the same total", "three-way"
)
PAYMENTS = Check("payment-applied", "every settled payment has an application", "three-way")
CUSTOMERS = Check(
    "customers-agree",
    "every customer agrees between the ERP, billing and the cross-reference",
    "three-way",
)
CHECKS = (OPPORTUNITIES, DUE_PERIODS, POSTINGS, PAYMENTS, CUSTOMERS)

# Why a document did not take effect: (service, key) -> "ErrorClass: reason", or "".
Held = Callable[[str, str], str]


def opportunities(
    conn: psycopg.Connection, published: list[OpportunityClosed], held: Held
) -> list[Finding]:
    ids = sorted({o.opportunity_id for o in published})
    have = {
        r[0]
        for r in conn.execute(
            "SELECT opportunity_id FROM billing.subscriptions WHERE opportunity_id = ANY(%s)",
            (ids,),
        )
    }
    return [
        Finding(
            OPPORTUNITIES.name,
            f"opportunity {o}",
            "closed won in CRM, no subscription in billing",
            (f"opportunity {o}",),
            held("subscription-activator", o),
        )
        for o in ids
        if o not in have
    ]


def due_periods(conn: psycopg.Connection, since: str | None) -> tuple[list[Finding], str]:
    """Each subscription's periods due by the last finished invoice run that saw it, against the
    lines billing issued. Returns the findings and a note when there is nothing to judge by."""
    if not conn.execute("SELECT to_regclass('billing.invoice_runs')").fetchone()[0]:  # type: ignore[index]
        return [], "billing keeps no record of its invoice runs: due periods not checked"
    subs = conn.execute(
        "SELECT s.subscription_id, (SELECT max(r.as_of) FROM billing.invoice_runs r "
        "   WHERE r.started_at >= s.created_at AND r.finished_at IS NOT NULL) "
        "FROM billing.subscriptions s WHERE %(since)s::timestamptz IS NULL "
        "OR s.created_at >= %(since)s ORDER BY 1",
        {"since": since},
    ).fetchall()
    found: list[Finding] = []
    for subscription, as_of in subs:
        if as_of is None:
            continue  # no invoice run since it was created: nothing was due to be billed yet
        found += _unbilled(conn, subscription, as_of)
    return found, ""


def _unbilled(conn: psycopg.Connection, subscription: str, as_of: date) -> list[Finding]:
    phases = conn.execute(
        "SELECT phase_no, billing_period, start_date, end_date, quantity * unit_price "
        "FROM billing.subscription_phases WHERE subscription_id = %s",
        (subscription,),
    ).fetchall()
    billed = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT phase_no, period_start FROM billing.invoice_lines WHERE subscription_id = %s",
            (subscription,),
        )
    }
    return [
        Finding(
            DUE_PERIODS.name,
            f"subscription {subscription}",
            f"phase {phase} period from {period.start} was due by the invoice run as of "
            f"{as_of} and has no invoice",
            (f"subscription {subscription}",),
        )
        for phase, kind, start, end, charge in phases
        if charge > 0
        for period in billing_periods(BillingPeriod(kind), start, end, as_of)
        if (phase, period.start) not in billed
    ]


def postings(conn: psycopg.Connection, since: str | None, held: Held) -> list[Finding]:
    rows = conn.execute(
        "SELECT 'invoice', i.invoice_id, i.invoice_id, i.currency, i.total, a.original_amount "
        "FROM billing.invoices i LEFT JOIN erp.ar_open_items a USING (invoice_id) "
        "WHERE (%(since)s::timestamptz IS NULL OR i.created_at >= %(since)s) "
        "AND a.original_amount IS DISTINCT FROM i.total "
        "UNION ALL "
        "SELECT 'credit memo', m.credit_memo_id, m.invoice_id, i.currency, m.total, c.amount "
        "FROM billing.credit_memos m JOIN billing.invoices i USING (invoice_id) "
        "LEFT JOIN erp.ar_credits c USING (credit_memo_id) "
        "WHERE (%(since)s::timestamptz IS NULL OR i.created_at >= %(since)s) "
        "AND c.amount IS DISTINCT FROM m.total ORDER BY 1, 2",
        {"since": since},
    ).fetchall()
    found = []
    for kind, document, invoice, c, total, posted in rows:
        what = (
            f"issued for {fmt(total, c)}, not posted in the ERP"
            if posted is None
            else f"issued for {fmt(total, c)}, posted for {fmt(posted, c)}"
        )
        found.append(
            Finding(
                POSTINGS.name,
                f"{kind} {document}",
                what,
                tuple(dict.fromkeys((f"{kind} {document}", f"invoice {invoice}"))),
                held("invoice-poster", document) if posted is None else "",
            )
        )
    return found


def payments(
    conn: psycopg.Connection, published: list[PaymentSettled], held: Held
) -> list[Finding]:
    latest = {p.payment_id: p for p in published}
    applied = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT payment_id, amount, currency FROM erp.payments WHERE payment_id = ANY(%s)",
            (sorted(latest),),
        )
    }
    found = []
    for payment_id, p in sorted(latest.items()):
        got = applied.get(payment_id)
        if got == (p.amount, p.currency):
            continue
        what = (
            f"settled for {fmt(p.amount, p.currency)}, no application in the ERP"
            if got is None
            else f"settled for {fmt(p.amount, p.currency)}, applied as {fmt(*got)}"
        )
        found.append(
            Finding(
                PAYMENTS.name,
                f"payment {payment_id}",
                what,
                (f"payment {payment_id}",),
                held("payment-settler", payment_id) if got is None else "",
            )
        )
    return found


def under_review(conn: psycopg.Connection, entity: str | None) -> list[Finding]:
    """Payments whose cash waits for a review (they named another customer's invoice): held
    items, listed, not breaks."""
    rows = conn.execute(
        "SELECT payment_id, currency, unapplied_open, review_reason FROM erp.payments "
        "WHERE review_reason IS NOT NULL AND unapplied_open > 0 "
        "AND (%(entity)s::text IS NULL OR legal_entity = %(entity)s) ORDER BY 1",
        {"entity": entity},
    ).fetchall()
    return [
        Finding(
            PAYMENTS.name,
            f"payment {p}",
            f"{fmt(held, c)} unapplied, waiting for a review",
            (f"payment {p}",),
            f"under review: {reason}",
        )
        for p, c, held, reason in rows
    ]


def customers(conn: psycopg.Connection) -> list[Finding]:
    """Each cross-reference row names an ERP customer and a billing account that exist; an
    account that owns its customer agrees with both on what they hold of it."""
    rows = conn.execute(
        "SELECT x.account_id, x.erp_customer_id, x.billing_account_id, "
        "       x.matched_account_id IS NULL AS owner, "
        "       c.customer_id IS NOT NULL, b.billing_account_id IS NOT NULL, "
        "       ARRAY[x.account_id, x.name, x.country, x.currency, x.legal_entity], "
        "       ARRAY[c.account_id, c.name, c.country, c.currency, c.legal_entity], "
        "       ARRAY[b.account_id, b.name, b.country, b.currency, b.legal_entity] "
        "FROM finsync.account_xref x "
        "LEFT JOIN erp.customers c ON c.customer_id = x.erp_customer_id "
        "LEFT JOIN billing.accounts b ON b.billing_account_id = x.billing_account_id "
        "ORDER BY 1"
    ).fetchall()
    fields = ("account", "name", "country", "currency", "legal entity")
    found = []
    for account, customer, billing_account, owner, in_erp, in_billing, x, c, b in rows:
        problems = []
        if not in_erp:
            problems.append(f"ERP customer {customer} does not exist")
        if not in_billing:
            problems.append(f"billing account {billing_account} does not exist")
        if owner:
            for system, values, present in (("ERP", c, in_erp), ("billing", b, in_billing)):
                differ = [f for f, mine, theirs in zip(fields, x, values, strict=True)
                          if present and mine != theirs]  # fmt: skip
                if differ:
                    problems.append(f"{system} differs in {', '.join(differ)}")
        if problems:
            found.append(
                Finding(
                    CUSTOMERS.name,
                    f"account {account}",
                    "; ".join(problems),
                    (f"account {account}", f"customer {customer}", f"billing {billing_account}"),
                )
            )
    return found
