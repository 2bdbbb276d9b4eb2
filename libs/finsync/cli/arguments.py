"""Argument types for dates and times, whose errors show the form expected."""

from __future__ import annotations

import argparse
from datetime import date, datetime


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date such as 2026-11-30") from None


def iso_time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time such as 2026-11-27 or 2026-11-27T09:30"
        ) from None
    return t if t.tzinfo else t.astimezone()
