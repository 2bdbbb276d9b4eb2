"""Input limits, part of the contract: what an event may carry before anything stores it.

A record over a limit is a dead letter that names the field and the limit, checked right after
decoding, before the inbox or any system of record sees it. The limits keep every value
storable (PostgreSQL text cannot hold NUL; an index entry holds about 2.7 kB), every amount
within `numeric(18,4)` and every date within the calendar arithmetic of billing.
"""

from __future__ import annotations

import re
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

# C0 and C1 controls; in free text less tab, line feed and carriage return.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHOLE_LIMIT = Decimal(10) ** (MAX_DIGITS - MAX_SCALE)
_SCALE = 10**MAX_SCALE


def _text(path: str, field: str, value: str) -> str | None:
    free = field in TEXT_FIELDS
    limit = MAX_TEXT if free else MAX_ID
    if len(value) > limit:
        return f"{path} is {len(value)} characters long; the limit is {limit}"
    if value.isprintable():  # the common case, in one C call: no control character at all
        return None
    found = (_TEXT_CONTROLS if free else _CONTROLS).search(value)
    if found is not None:
        at = found.start()
        return f"{path} has control character U+{ord(value[at]):04X} at position {at}"
    return None


def _amount(path: str, value: Decimal) -> str | None:
    if not value.is_finite():
        return f"{path} is not a finite amount"
    # Within the whole digits, and no finer than the scale: 1.50000 is 3/2, which fits. A
    # non-zero amount under 10^-4 never fits, and is told first: 1E-999999999's denominator
    # would take hours to build.
    tiny = value and value.adjusted() < -MAX_SCALE
    if (
        -_WHOLE_LIMIT < value < _WHOLE_LIMIT
        and not tiny
        and _SCALE % value.as_integer_ratio()[1] == 0
    ):
        return None
    return f"{path} = {value} does not fit decimal({MAX_DIGITS},{MAX_SCALE})"


def _day(path: str, value: date) -> str | None:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST <= day <= LATEST:
        return f"{path} = {value.isoformat()} is outside {EARLIEST} .. {LATEST}"
    return None


def violations(model: BaseModel, path: str = "") -> list[str]:
    """Every limit the event breaks, each saying which field and why; [] if none. Runs for
    every record a service takes in: the common types are tested first, and a field's path is
    spelled out only for a problem."""
    found: list[str] = []
    for field in type(model).model_fields:
        value = getattr(model, field)
        problem: str | None = None
        if isinstance(value, str):  # StrEnum values too: they were checked by the schema
            problem = _text(path + field, field, str(value))
        elif isinstance(value, Decimal):
            problem = _amount(path + field, value)
        elif isinstance(value, date):
            problem = _day(path + field, value)
        elif isinstance(value, list):
            if len(value) > MAX_LINES:
                problem = f"{path}{field} has {len(value)} entries; the limit is {MAX_LINES}"
            else:
                for i, item in enumerate(value):
                    if isinstance(item, BaseModel):
                        found += violations(item, f"{path}{field}[{i}].")
        if problem:
            found.append(problem)
    return found
