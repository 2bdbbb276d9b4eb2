"""Lineage: where a deal's money is. Any business id (account, opportunity, subscription,
invoice, credit memo, payment, refund, dispute, payout) and the chain CRM -> billing -> ERP ->
cash through it, each hop with its time, events, trace and journals, or why it is missing."""

from __future__ import annotations

from fastapi import APIRouter, Response

from finsync.console import web
from finsync.ops import lineage
from finsync.ops.lineage_model import Hop, Lineage

router = APIRouter()
MAX_ID = 200  # longer than any business id finsync accepts
# Kinds of hop whose id lineage.trace takes (an ERP posting's id is not a business id).
TRACEABLE = frozenset(
    (
        "account",
        "opportunity",
        "subscription",
        "invoice",
        "credit-memo",
        "payment",
        "refund",
        "dispute",
        "payout",
    )
)


def depths(found: Lineage) -> list[tuple[Hop, int]]:
    """Each hop with its depth in the tree (hops come after their parents)."""
    depth: dict[int, int] = {}
    out = []
    for hop in found.hops:
        depth[hop.n] = 0 if hop.parent is None else depth.get(hop.parent, 0) + 1
        out.append((hop, depth[hop.n]))
    return out


@router.get("/lineage")
def lineage_page(page: web.Viewer, q: str = "") -> Response:
    q = q.strip()[:MAX_ID]
    found = lineage.trace(page.conn, q) if q else None
    return page.render(
        "lineage.html", q=q, lineage=found, hops=depths(found) if found else [], traceable=TRACEABLE
    )
