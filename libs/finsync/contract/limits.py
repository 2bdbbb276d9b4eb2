"""Input limits, part of the contract: what an event may carry before anything stores it.

A record over a limit is a dead letter that names the field and the limit, checked right after
decoding, before the inbox or any system of record sees it. The limits keep every value
storable (PostgreSQL text cannot hold NUL; an index entry holds about 2.7 kB), every amount
within `numeric(18,4)` and every date within the calendar arithmetic of billing.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel

MAX_ID = 200  # characters of an id, code or reference
MAX_TEXT = 2000  # characters of a name or description
MAX_LINES = 1000  # lines of one document
MAX_DIGITS = 18  # Avro decimal(18,4), PostgreSQL numeric(18,4)
MAX_SCALE = 4
EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)

TEXT_FIELDS = frozenset({"name", "description"})  # free text: tabs and line breaks allowed
_TEXT_CONTROLS = frozenset("\t\n\r")


def _control(text: str, allowed: frozenset[str]) -> int | None:
    """Position of the first control character not allowed, if any."""
    for i, ch in enumerate(text):
        if (ch < " " or "\x7f" <= ch <= "\x9f") and ch not in allowed:
            return i
    return None


def _text(path: str, field: str, value: str) -> str | None:
    free = field in TEXT_FIELDS
    limit = MAX_TEXT if free else MAX_ID
    if len(value) > limit:
        return f"{path} is {len(value)} characters long; the limit is {limit}"
    at = _control(value, _TEXT_CONTROLS if free else frozenset())
    if at is not None:
        return f"{path} has control character U+{ord(value[at]):04X} at position {at}"
    return None


def _amount(path: str, value: Decimal) -> str | None:
    if not value.is_finite():
        return f"{path} is not a finite amount"
    _, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    scale = max(-exponent, 0)
    whole = max(len(digits) + exponent, 0)
    if scale > MAX_SCALE or whole > MAX_DIGITS - MAX_SCALE:
        return f"{path} = {value} does not fit decimal({MAX_DIGITS},{MAX_SCALE})"
    return None


def _day(path: str, value: date) -> str | None:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST <= day <= LATEST:
        return f"{path} = {value.isoformat()} is outside {EARLIEST} .. {LATEST}"
    return None


def violations(model: BaseModel, path: str = "") -> list[str]:
    """Every limit the event breaks, each saying which field and why; [] if none."""
    found: list[str] = []
    for field in type(model).model_fields:
        value = getattr(model, field)
        where = f"{path}{field}"
        problem: str | None = None
        if isinstance(value, str):  # StrEnum values too: they were checked by the schema
            problem = _text(where, field, str(value))
        elif isinstance(value, Decimal):
            problem = _amount(where, value)
        elif isinstance(value, date):
            problem = _day(where, value)
        elif isinstance(value, list):
            if len(value) > MAX_LINES:
                problem = f"{where} has {len(value)} entries; the limit is {MAX_LINES}"
            else:
                for i, item in enumerate(value):
                    if isinstance(item, BaseModel):
                        found += violations(item, f"{where}[{i}].")
        if problem:
            found.append(problem)
    return found
