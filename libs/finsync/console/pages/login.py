"""Signing in and out."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from finsync.console import auth, sessions, web
from finsync.settings import Settings

router = APIRouter()
log = logging.getLogger("finsync.console")

# Before there is a session, the sign-in form is tied to the browser by a cookie of its own
# (double submit), so another site cannot sign a browser in as someone else.
LOGIN_COOKIE = "finsync_login"


def _login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    settings: Settings = request.app.state.settings
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = web.render(
        request, "login.html", status, next_path=next_path, error=error, login_token=token
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **_login_cookie(settings))
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, web.safe_next(next))


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_token.encode()):
        raise HTTPException(403, "The sign-in form expired; load the page again.")
    if "\x00" in username or "\x00" in password:
        raise HTTPException(400, "A username or password cannot hold a NUL byte.")
    pool = request.app.state.pool
    with pool.connection() as conn:
        stored = auth.lookup(conn, username)
    try:  # the slow check holds no connection and no lock
        ok = auth.verify(stored, password)
    except auth.Busy:
        raise HTTPException(
            503, "Too many sign-ins at once; try again in a moment.", {"Retry-After": "2"}
        ) from None
    name = web.cookie_name(settings)
    with pool.connection() as conn:
        role = auth.record(conn, username, stored, ok)
        if role is None:
            conn.commit()  # the failure counts
            log.info("sign-in failed")  # never the name typed: it may be a password
            return _login_page(request, web.safe_next(next), auth.FAILED, 401)
        assert stored is not None
        auth.rehash(conn, username, stored, password)
        # A sign-in ends the session this browser had, whoever's it was.
        sessions.end(conn, request.cookies.get(name, ""))
        token = sessions.create(conn, username)
        conn.commit()
    log.info("signed in", extra={"user": username, "role": role})
    response = RedirectResponse(web.safe_next(next), status_code=303)
    response.set_cookie(name, token, **_session_cookie(settings))
    response.delete_cookie(LOGIN_COOKIE, **_login_cookie(settings))
    return response


def _session_cookie(settings: Settings) -> dict[str, Any]:
    """The session cookie's attributes: the same when set and when deleted, or a browser keeps
    the old one (a __Host- cookie is only replaced by one that is Secure, path /)."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": settings.console_secure_cookies,
        "path": "/",
    }


def _login_cookie(settings: Settings) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": settings.console_secure_cookies}


@router.post("/logout")
def logout(page: web.Posted) -> Response:
    cookie = web.cookie_name(page.settings)
    sessions.end(page.conn, page.request.cookies.get(cookie, ""))
    page.conn.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie, **_session_cookie(page.settings))
    return response
