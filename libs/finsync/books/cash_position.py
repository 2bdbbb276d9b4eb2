"""What finance reads back of a run's cash: per legal entity and currency, the payments by the
account they reached, refunds, disputes, payouts, and where the money stands."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg

from finsync.books.clearing import in_transit


@dataclass(frozen=True)
class CashPosition:
    legal_entity: str
    currency: str
    to_clearing: int  # this run's payments booked to 1010 (card, ACH)
    to_bank: int  # and to 1000 (wire, SEPA debit)
    under_review: int  # held on the payer: they named another customer's invoice
    earmarked: int  # paid before their invoice posted, waiting for it
    refunds: int
    refunded: Decimal
    disputes_open: int
    disputes_won: int
    disputes_lost: int
    payouts_matched: int
    payouts_mismatched: int
    paid_out: Decimal  # what this run's payouts brought to the bank
    differences: Decimal  # what they booked to 1090
    in_transit: Decimal  # all documents in clearing not paid out yet
    clearing: Decimal  # GL 1010


_RUN = """
WITH p AS (SELECT legal_entity AS e, currency AS c,
                  count(*) FILTER (WHERE cash_account = '1010') AS clearing,
                  count(*) FILTER (WHERE cash_account <> '1010') AS bank,
                  count(*) FILTER (WHERE review_reason IS NOT NULL) AS review,
                  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM erp.payment_earmarks m
                                   WHERE m.payment_id = x.payment_id AND NOT m.applied)) AS early
             FROM erp.payments x WHERE payment_id LIKE %(like)s GROUP BY 1, 2),
     r AS (SELECT legal_entity AS e, currency AS c, count(*) AS n, sum(amount) AS amount
             FROM erp.refunds WHERE refund_id LIKE %(like)s GROUP BY 1, 2),
     d AS (SELECT legal_entity AS e, currency AS c,
                  count(*) FILTER (WHERE status = 'OPENED') AS opened,
                  count(*) FILTER (WHERE status = 'WON') AS won,
                  count(*) FILTER (WHERE status = 'LOST') AS lost
             FROM erp.disputes WHERE dispute_id LIKE %(like)s GROUP BY 1, 2),
     o AS (SELECT legal_entity AS e, currency AS c,
                  count(*) FILTER (WHERE status = 'MATCHED') AS matched,
                  count(*) FILTER (WHERE status = 'MISMATCH') AS mismatched,
                  sum(amount) AS amount, sum(difference_amount) AS differences
             FROM erp.payouts WHERE payout_id LIKE %(like)s GROUP BY 1, 2)
SELECT e, c, COALESCE(p.clearing, 0), COALESCE(p.bank, 0), COALESCE(p.review, 0),
       COALESCE(p.early, 0), COALESCE(r.n, 0), COALESCE(r.amount, 0), COALESCE(d.opened, 0),
       COALESCE(d.won, 0), COALESCE(d.lost, 0), COALESCE(o.matched, 0),
       COALESCE(o.mismatched, 0), COALESCE(o.amount, 0), COALESCE(o.differences, 0)
  FROM p FULL JOIN r USING (e, c) FULL JOIN d USING (e, c) FULL JOIN o USING (e, c)
 ORDER BY 1, 2
"""


def cash_positions(conn: psycopg.Connection, like: str) -> list[CashPosition]:
    """This run's cash documents (ids LIKE `like`), beside the whole ledger's clearing."""
    transit = in_transit(conn)
    out = []
    for row in conn.execute(_RUN, {"like": like}).fetchall():
        moving, gl = transit.get((row[0], row[1]), (Decimal(0), Decimal(0)))
        out.append(CashPosition(*(*row, moving, gl)))
    return out
