"""The figures finance-analytics serves, read over HTTP: one client for the CLI, the console and
the demo. Amounts come as decimal strings and stay Decimal."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from finsync.settings import Settings

TIMEOUT_SECONDS = 2.0
AGING = ("current", "1-30", "31-60", "61-90", "90+")


class AnalyticsUnavailable(Exception):
    """finance-analytics did not answer, or not with figures."""


@dataclass(frozen=True)
class KpiRow:
    legal_entity: str
    currency: str
    day: date
    bookings: Decimal
    billings: Decimal
    credits: Decimal
    net_billings: Decimal
    collections: Decimal
    open_ar: Decimal
    aging: tuple[Decimal, ...]  # as AGING
    unapplied_cash: Decimal
    dso: Decimal | None


@dataclass(frozen=True)
class Kpis:
    ready: bool  # False while the app recovers its tables: figures may be partial
    events_counted: int
    rows: tuple[KpiRow, ...]
    dead_letters: tuple[tuple[date, str, int], ...]  # day, service, count

    def books(self) -> list[tuple[str, str]]:
        return sorted({(r.legal_entity, r.currency) for r in self.rows})

    def of(self, legal_entity: str, currency: str) -> list[KpiRow]:
        return [r for r in self.rows if (r.legal_entity, r.currency) == (legal_entity, currency)]


def _row(r: dict[str, Any]) -> KpiRow:
    money = ("bookings", "billings", "credits", "net_billings", "collections", "open_ar")
    return KpiRow(
        legal_entity=str(r["legal_entity"]),
        currency=str(r["currency"]),
        day=date.fromisoformat(r["day"]),
        **{k: Decimal(r[k]) for k in money},
        aging=tuple(Decimal(a) for a in r["aging"]),
        unapplied_cash=Decimal(r["unapplied_cash"]),
        dso=None if r["dso"] is None else Decimal(r["dso"]),
    )


def parse(body: dict[str, Any]) -> Kpis:
    try:
        return Kpis(
            ready=bool(body["ready"]),
            events_counted=int(body["events_counted"]),
            rows=tuple(_row(r) for r in body["figures"]),
            dead_letters=tuple(
                (date.fromisoformat(x["day"]), str(x["service"]), int(x["count"]))
                for x in body["dead_letters"]
            ),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise AnalyticsUnavailable(f"finance-analytics answered without figures ({exc!r})") from exc


def fetch(settings: Settings, days: int = 90) -> Kpis:
    url = f"{settings.analytics_url}/kpis?days={int(days)}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = json.load(response)
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        raise AnalyticsUnavailable(
            f"finance-analytics does not answer at {settings.analytics_url} ({exc}); "
            "start it with `finsync run finance-analytics`"
        ) from exc
    if not isinstance(body, dict):
        raise AnalyticsUnavailable("finance-analytics answered without figures")
    return parse(body)
