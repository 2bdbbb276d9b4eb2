"""The figures as the app's web view serves them (JSON; decimals as text, never floats)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .ledger import AGING, Ledger


def as_json(ledger: Ledger, ready: bool, days: int, today: date) -> dict[str, Any]:
    rows = ledger.figures(today)
    end = max((r.day for r in rows), default=None)
    since = end - timedelta(days=days - 1) if end else None
    letters = ledger.dead_letters()
    return {
        "ready": ready,  # False until its tables are recovered: figures may be partial
        "events_counted": ledger.counted,
        "aging_buckets": list(AGING),
        "figures": [
            {
                "legal_entity": r.legal_entity,
                "currency": r.currency,
                "day": r.day.isoformat(),
                "bookings": str(r.bookings),
                "billings": str(r.billings),
                "credits": str(r.credits),
                "net_billings": str(r.net_billings),
                "collections": str(r.collections),
                "open_ar": str(r.open_ar),
                "aging": [str(a) for a in r.aging],
                "unapplied_cash": str(r.unapplied_cash),
                "dso": None if r.dso is None else str(r.dso),
            }
            for r in rows
            if since is None or r.day >= since
        ],
        "dead_letters": [
            {"day": day.isoformat(), "service": service, "count": n}
            for day in sorted(letters)
            if since is None or day >= since
            for service, n in sorted(letters[day].items())
        ],
    }
