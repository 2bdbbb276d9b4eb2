"""Signing in: password checks that take about as long whether or not the user exists, and a
lock after repeated failures so a password cannot be guessed online."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from functools import cache

import psycopg
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from finsync.console.users import HASHER, MAX_PASSWORD

MAX_FAILURES = 5  # failures in a row that lock a user ...
LOCK_SECONDS = 60  # ... for this long

# Every failure gets the same words: they must not tell whether the user exists or is locked.
FAILED = "Wrong username or password. After 5 failures in a row the user is locked for a minute."
VERIFYING = 4  # password checks at once, per console process
_VERIFYING = threading.BoundedSemaphore(VERIFYING)


class Busy(Exception):
    """Too many sign-ins are being checked at once; try again in a moment."""


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they cost what a known user costs."""
    return HASHER.hash(secrets.token_hex(16))


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Stored:
    """What signing in needs of a user, read before the slow password check."""

    password_hash: str
    role: str
    refused: bool  # disabled or locked: no password lets them in now


def lookup(conn: psycopg.Connection, username: str) -> Stored | None:
    row = conn.execute(
        "SELECT password_hash, role, disabled OR coalesce(locked_until > now(), false) "
        "FROM finsync.console_users WHERE username = %s",
        (username,),
    ).fetchone()
    return Stored(*row) if row else None


def verify(stored: Stored | None, password: str, timeout: float = 30) -> bool:
    """The argon2 check, holding no connection or lock (it takes a fraction of a second and
    tens of MiB); at most VERIFYING at once, so a burst of sign-ins cannot exhaust memory."""
    if not _VERIFYING.acquire(timeout=timeout):
        raise Busy
    try:
        if stored is None:
            _verify(_dummy_hash(), password[:MAX_PASSWORD])
            return False
        return _verify(stored.password_hash, password[:MAX_PASSWORD])
    finally:
        _VERIFYING.release()


def record(conn: psycopg.Connection, username: str, stored: Stored | None, ok: bool) -> str | None:
    """Counts a failure or records a success; returns the role if the user may sign in now.

    A success counts only if the user is still neither disabled nor locked and the hash is the
    one checked (no password change meanwhile). The caller commits (a failure must stick)."""
    if stored is None or stored.refused:
        return None  # a locked user's tries neither count nor unlock
    if not ok:
        conn.execute(
            "UPDATE finsync.console_users SET "
            "locked_until = CASE WHEN failed_logins + 1 >= %(max)s "
            "    THEN now() + make_interval(secs => %(lock)s) END, "
            "failed_logins = CASE WHEN failed_logins + 1 >= %(max)s "
            "    THEN 0 ELSE failed_logins + 1 END "
            "WHERE username = %(user)s AND NOT coalesce(locked_until > now(), false)",
            {"max": MAX_FAILURES, "lock": LOCK_SECONDS, "user": username},
        )
        return None
    row = conn.execute(
        "UPDATE finsync.console_users SET failed_logins = 0, locked_until = NULL, "
        "last_login = now() WHERE username = %s AND password_hash = %s AND NOT disabled "
        "AND NOT coalesce(locked_until > now(), false) RETURNING role",
        (username, stored.password_hash),
    ).fetchone()
    return str(row[0]) if row else None


def rehash(conn: psycopg.Connection, username: str, stored: Stored, password: str) -> None:
    """A hash made with weaker parameters than today's is replaced once the password is known."""
    if HASHER.check_needs_rehash(stored.password_hash):
        conn.execute(
            "UPDATE finsync.console_users SET password_hash = %s "
            "WHERE username = %s AND password_hash = %s",
            (HASHER.hash(password[:MAX_PASSWORD]), username, stored.password_hash),
        )


def unlock(conn: psycopg.Connection, username: str) -> bool:
    """Lift a lock after failures before it runs out; False if there is no such user."""
    return (
        conn.execute(
            "UPDATE finsync.console_users SET failed_logins = 0, locked_until = NULL "
            "WHERE username = %s",
            (username,),
        ).rowcount
        > 0
    )


def authenticate(conn: psycopg.Connection, username: str, password: str) -> str | None:
    """The user's role if the password is theirs and they may sign in now, else None: the
    three steps on one connection (the console's sign-in page lets go of it while verifying).
    The caller commits."""
    stored = lookup(conn, username)
    role = record(conn, username, stored, verify(stored, password))
    if role is not None and stored is not None:
        rehash(conn, username, stored, password)
    return role
