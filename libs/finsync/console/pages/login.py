"""Signing in and out."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated

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
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.console_secure_cookies,
        max_age=3600,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, web.safe_next(next))


@router.post("/login")
def login(
    request: Request,
    conn: web.Conn,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_token.encode()):
        raise HTTPException(403, "The sign-in form expired; load the page again.")
    role = auth.authenticate(conn, username, password)
    if role is None:
        conn.commit()  # the failure counts
        log.info("sign-in failed")  # never the name typed: it may be a password
        return _login_page(request, web.safe_next(next), auth.FAILED, 401)
    token = sessions.create(conn, username)
    conn.commit()
    log.info("signed in", extra={"user": username, "role": role})
    response = RedirectResponse(web.safe_next(next), status_code=303)
    response.set_cookie(
        web.cookie_name(settings),
        token,
        httponly=True,
        samesite="strict",
        secure=settings.console_secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(page: web.Posted) -> Response:
    cookie = web.cookie_name(page.settings)
    sessions.end(page.conn, page.request.cookies.get(cookie, ""))
    page.conn.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie, path="/")
    return response
