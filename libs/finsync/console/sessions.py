"""Server-side sessions: the browser holds a random token, the database only its SHA-256, with
the session's CSRF token and when it was last used. A session ends after IDLE_HOURS unused, and
LIFETIME_HOURS after sign-in in any case."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg

IDLE_HOURS = 8
LIFETIME_HOURS = 12  # from sign-in, however busy the session: then sign in again
COOKIE = "finsync_session"
_TOUCH_SECONDS = 60  # last_seen is written at most once a minute per session, not per request


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create(conn: psycopg.Connection, username: str) -> str:
    """A new session for `username`; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "DELETE FROM finsync.console_sessions WHERE last_seen < now() - make_interval(hours => %s) "
        "OR created_at < now() - make_interval(hours => %s)",
        (IDLE_HOURS, LIFETIME_HOURS),
    )
    conn.execute(
        "INSERT INTO finsync.console_sessions (token_sha256, username, csrf_token) "
        "VALUES (%s, %s, %s)",
        (_digest(token), username, secrets.token_urlsafe(32)),
    )
    return token


def lookup(conn: psycopg.Connection, token: str) -> Session | None:
    """The live session of `token`, its user's current role; None if expired, ended or the
    user was disabled. Marks it used."""
    if not token or len(token) > 100:
        return None
    digest = _digest(token)
    row = conn.execute(
        "SELECT s.username, u.role, s.csrf_token, "
        "       s.last_seen < now() - make_interval(secs => %s) "
        "FROM finsync.console_sessions s JOIN finsync.console_users u USING (username) "
        "WHERE s.token_sha256 = %s AND NOT u.disabled "
        "  AND s.last_seen > now() - make_interval(hours => %s) "
        "  AND s.created_at > now() - make_interval(hours => %s)",
        (_TOUCH_SECONDS, digest, IDLE_HOURS, LIFETIME_HOURS),
    ).fetchone()
    if row is None:
        return None
    username, role, csrf, stale = row
    if stale:
        conn.execute(
            "UPDATE finsync.console_sessions SET last_seen = now() WHERE token_sha256 = %s",
            (digest,),
        )
    return Session(username, role, csrf)


def end(conn: psycopg.Connection, token: str) -> None:
    if not token or len(token) > 100:
        return
    conn.execute("DELETE FROM finsync.console_sessions WHERE token_sha256 = %s", (_digest(token),))
