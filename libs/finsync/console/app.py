"""The ops console: a server-rendered web app (FastAPI, Jinja2, htmx) over the dead-letter
index, service health, lineage, reconciliation and the audit trail.

Every page needs a signed-in user; every POST needs the session's CSRF token; every action
that changes something needs an operator. Only /healthz and /metrics answer anyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from finsync.console import web
from finsync.console.limits import BodyLimit
from finsync.console.pages import (
    asyncapi,
    audit,
    exception_actions,
    exceptions,
    kpis,
    lineage,
    login,
    overview,
    reconciliation,
)
from finsync.console.pool import Pool
from finsync.console.replays import Jobs
from finsync.console.telemetry import REQUESTS
from finsync.errors import Outage
from finsync.ops import payload
from finsync.runtime import db, metrics
from finsync.settings import Settings

log = logging.getLogger("finsync.console")

# Pages may load only what this console serves: no inline script, no other origin, no frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ROUTERS = (
    login.router,
    overview.router,
    exceptions.router,
    exception_actions.router,
    lineage.router,
    reconciliation.router,
    kpis.router,
    asyncapi.router,
    audit.router,
)
OPEN_POSTS = {"/login"}  # the only POST without a session (it has its own CSRF cookie)
METHODS = {"GET", "POST", "HEAD"}  # metric labels: any other method a client sends is "other"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.pool.close()

    app = FastAPI(
        title="finsync console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.pool = Pool(settings)
    app.state.reconciliation = reconciliation.Cache()
    app.state.replays = Jobs()
    app.state.registry = payload.registry(settings)  # one client: fetched schemas stay cached
    # Inside the headers and metrics, so its refusals get both; before any page reads a body.
    app.add_middleware(BodyLimit)
    app.middleware("http")(_headers_and_log)
    app.mount("/static", StaticFiles(directory=web.HERE / "static"), name="static")
    # An ASGI app as a plain route (a mount would redirect /metrics to /metrics/).
    app.router.routes.append(Route("/metrics", _Asgi(metrics.asgi_app()), methods=["GET"]))
    app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(web.LoginRequired, _login_required)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(Outage, _database_down)
    app.add_exception_handler(psycopg.Error, _database_error)
    _check_every_post_is_guarded(app)
    return app


class _Asgi:
    """An ASGI app Starlette's Route calls as is (it wraps plain functions as endpoints)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _healthz(request: Request) -> JSONResponse:
    """Alive, for a load balancer: the process answers. The database is reported, not
    required, so a database blip does not get the console restarted."""
    try:
        with request.app.state.pool.connection() as conn:
            conn.execute("SELECT 1")
        database = "up"
    except (Outage, psycopg.Error):
        database = "down"
    return JSONResponse({"status": "ok", "database": database})


async def _headers_and_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    path = request.url.path
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"  # pages hold payloads: never cached
    # Labels from fixed sets (a route's template, never its path): a client cannot mint series.
    route = getattr(request.scope.get("route"), "path", "unmatched")
    method = request.method if request.method in METHODS else "other"
    seconds = time.perf_counter() - started
    REQUESTS.labels(method, route, str(response.status_code)).observe(seconds)
    if route not in ("/metrics", "/healthz") and not path.startswith("/static/"):
        # The route's pattern, never its query: queries hold business ids and names.
        log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": response.status_code,
                "ms": round(seconds * 1000, 1),
            },
        )
    return response


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _error(request: Request, status: int, title: str, message: str) -> Response:
    template = "error_fragment.html" if _is_htmx(request) else "error.html"
    return web.render(request, template, status, title=title, message=message)


async def _login_required(request: Request, exc: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        here = "/"  # after signing in the browser GETs `next`: never an action's URL
    target = "/login?" + urlencode({"next": here})
    if _is_htmx(request):  # a fragment must not be swapped for the sign-in page
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


_TITLES = {403: "Not allowed", 404: "Not found", 405: "Not allowed here"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = _TITLES.get(exc.status_code, "Cannot do that")
    message = exc.detail if exc.status_code != 404 else "There is no such page or record."
    response = _error(request, exc.status_code, title, str(message))
    response.headers.update(exc.headers or {})
    return response


async def _malformed(request: Request, exc: Exception) -> Response:
    """A parameter of the wrong shape (a letter id that is not a number, a rate of "fast"):
    which one, never its value."""
    assert isinstance(exc, RequestValidationError)
    names = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
    return _error(
        request, 400, "Cannot do that", f"Malformed request: check {', '.join(names) or 'it'}."
    )


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    response = _error(
        request,
        503,
        "Database unavailable",
        "The console cannot reach its PostgreSQL database right now. The services keep "
        "their own state and catch up when it is back; try again in a moment.",
    )
    response.headers["Retry-After"] = "5"
    return response


async def _database_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, psycopg.Error) and db.is_outage(exc):
        return await _database_down(request, exc)
    if isinstance(exc, psycopg.DataError):  # what was typed, not the database, is wrong
        log.info("request refused by the database", extra={"error": type(exc).__name__})
        return _error(
            request,
            400,
            "Cannot do that",
            "The request holds a value the database cannot take (a NUL byte, a number out of "
            "range, a malformed date); check what was typed.",
        )
    log.error("database error", extra={"error": type(exc).__name__})
    return _error(
        request, 500, "Something went wrong", "The database refused the request; it is logged."
    )


def _calls(dependant: Dependant) -> Iterator[object]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _check_every_post_is_guarded(app: FastAPI) -> None:
    """A POST route that forgot the CSRF check is a bug caught at start-up, not in an audit."""
    for route in app.routes:
        if (
            isinstance(route, APIRoute)
            and "POST" in (route.methods or ())
            and route.path not in OPEN_POSTS
            and web.csrf_checked not in set(_calls(route.dependant))
        ):
            raise RuntimeError(f"POST {route.path} does not check the CSRF token")
