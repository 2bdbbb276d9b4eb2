"""The exception queue's filters, as GET parameters (so a filtered view is a bookmark) and as
the hidden fields of a bulk action's form (so the action applies to what the page showed)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from finsync.ops.dead_letters import Query

STATUSES = ("open", "replayed", "resolved")


def parse_time(text: str | None, name: str) -> datetime | None:
    """ISO 8601, a date or a date and time (a browser's datetime-local); without an offset it
    is UTC."""
    if not text or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            400, f"{name} is not a date or time: write it as 2026-11-27 or 2026-11-27T14:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    service: str = ""
    error: str = ""
    key: str = ""
    since: str = ""
    until: str = ""
    status: str = ""

    @classmethod
    def of(cls, params: Any) -> Filters:
        """From a request's query parameters or a posted form (only the filter fields)."""
        values = {}
        for f in fields(cls):
            value = params.get(f.name)
            if isinstance(value, str) and "\x00" in value:
                raise HTTPException(400, f"{f.name} holds a NUL byte; remove it and try again.")
            values[f.name] = value.strip()[:200] if isinstance(value, str) else ""
        return cls(**values)

    def query(self) -> Query:
        if self.status and self.status not in STATUSES:
            raise HTTPException(400, f"status is one of {', '.join(STATUSES)}")
        return Query(
            service=self.service or None,
            error=self.error or None,
            key=self.key or None,
            since=parse_time(self.since, "since"),
            until=parse_time(self.until, "until"),
            status=self.status or None,
        )

    def params(self, **more: object) -> dict[str, str]:
        """The non-empty filters as URL parameters, with `more` added or replacing them (an
        empty or None value removes one)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        for name, value in more.items():
            if value is None or value == "":
                out.pop(name, None)
            else:
                out[name] = str(value)
        return out

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))
