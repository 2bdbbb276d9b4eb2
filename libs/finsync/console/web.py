"""What every page shares: templates and their filters, the request's database connection, the
signed-in user, the CSRF check on every POST, and the operator check on every action."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
import psycopg
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from finsync.console import sessions
from finsync.console.sessions import Session
from finsync.settings import Settings

HERE = Path(__file__).parent
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LIST_CLIP = 160  # characters of a value shown in a list; the detail page shows more
DETAIL_CLIP = 20_000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(value: object) -> str:
    """Control characters (NUL bytes and the like, which payloads may hold) as visible
    symbols: ␀ for NUL, and so on. Escaping is Jinja's autoescape."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(_symbol, text)


def _symbol(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\u2421" if code == 0x7F else chr(0x2400 + code)


def clip(value: object, limit: int = LIST_CLIP) -> str:
    text = printable(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int | Decimal):
        return f"{value:,}"
    return printable(value)


def pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value; payloads hold <script> and worse
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    printable=printable, clip=clip, when=when, number=number, pretty=pretty, query=urlencode
)


class LoginRequired(Exception):
    """No live session: the browser goes to the sign-in page."""


@dataclass(frozen=True)
class Page:
    """One signed-in request: who asks, on which connection."""

    request: Request
    conn: psycopg.Connection
    session: Session
    settings: Settings

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, status, session=self.session, **context)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("session", None)
    html = ENV.get_template(template).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def connection(request: Request) -> Iterator[psycopg.Connection]:
    with request.app.state.pool.connection() as conn:
        yield conn


# Ended before the response is sent, so what a handler committed is visible to the next page;
# capped so a burst of requests cannot open more connections than the database allows.
Conn = Annotated[psycopg.Connection, Depends(connection, scope="function", max_concurrency=10)]


def cookie_name(settings: Settings) -> str:
    """Behind HTTPS the cookie gets the __Host- prefix: browsers then insist on Secure, path /
    and no domain, so no sibling site can set or shadow it."""
    return f"__Host-{sessions.COOKIE}" if settings.console_secure_cookies else sessions.COOKIE


def signed_in(request: Request, conn: Conn) -> Page:
    settings: Settings = request.app.state.settings
    session = sessions.lookup(conn, request.cookies.get(cookie_name(settings), ""))
    conn.commit()  # the session's last use
    if session is None:
        raise LoginRequired
    return Page(request, conn, session, settings)


Viewer = Annotated[Page, Depends(signed_in)]


async def csrf_checked(request: Request, page: Viewer) -> Page:
    """Every POST carries the session's CSRF token: in the X-CSRF-Token header (htmx) or the
    form's hidden field."""
    sent: object = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(
        sent.encode(), page.session.csrf.encode()
    ):
        raise HTTPException(403, "This form is out of date or did not come from this console.")
    return page


Posted = Annotated[Page, Depends(csrf_checked)]


def operator_checked(page: Posted) -> Page:
    if not page.session.is_operator:
        raise HTTPException(403, "Only operators may do this; your role is viewer.")
    return page


Operator = Annotated[Page, Depends(operator_checked)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this console only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
