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


def _amount(v: object) -> Decimal:
    """An amount as the app sends it: decimal text, never a JSON number or a boolean."""
    if not isinstance(v, str):
        raise ValueError(f"an amount came as {type(v).__name__}, not decimal text")
    return Decimal(v)


def _row(r: dict[str, Any]) -> KpiRow:
    money = ("bookings", "billings", "credits", "net_billings", "collections", "open_ar")
    return KpiRow(
        legal_entity=str(r["legal_entity"]),
        currency=str(r["currency"]),
        day=date.fromisoformat(r["day"]),
        **{k: _amount(r[k]) for k in money},
        aging=tuple(_amount(a) for a in r["aging"]),
        unapplied_cash=_amount(r["unapplied_cash"]),
        dso=None if r["dso"] is None else _amount(r["dso"]),
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


# Straight to the app: a proxy from http_proxy must not carry 127.0.0.1's figures elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(settings: Settings, days: int = 90) -> Kpis:
    url = f"{settings.analytics_url}/kpis?days={int(days)}"
    try:
        with _OPENER.open(url, timeout=TIMEOUT_SECONDS) as response:
            # Amounts come as text; a number in JSON must not pass through float either.
            body = json.loads(response.read(), parse_float=Decimal)
    except urllib.error.HTTPError as exc:
        raise AnalyticsUnavailable(
            f"finance-analytics at {settings.analytics_url} answered {exc.code}"
        ) from exc
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        why = (
            "timed out"
            if isinstance(getattr(exc, "reason", exc), TimeoutError)
            else "is not running"
        )
        raise AnalyticsUnavailable(
            f"finance-analytics {why} at {settings.analytics_url}; "
            "start it with `finsync run finance-analytics`"
        ) from exc
    if not isinstance(body, dict):
        raise AnalyticsUnavailable("finance-analytics answered without figures")
    return parse(body)
