"""Signing in: password checks that take about as long whether or not the user exists, and a
lock after repeated failures so a password cannot be guessed online."""

from __future__ import annotations

import secrets
from functools import cache

import psycopg
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from finsync.console.users import HASHER, MAX_PASSWORD

MAX_FAILURES = 5  # failures in a row that lock a user ...
LOCK_SECONDS = 60  # ... for this long

# Every failure gets the same words: they must not tell whether the user exists or is locked.
FAILED = "Wrong username or password. After 5 failures in a row the user is locked for a minute."


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they cost what a known user costs."""
    return HASHER.hash(secrets.token_hex(16))


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(conn: psycopg.Connection, username: str, password: str) -> str | None:
    """The user's role if the password is theirs and they may sign in now, else None.

    Runs in the caller's transaction; the caller commits (the failure count must stick even
    though the sign-in failed)."""
    password = password[:MAX_PASSWORD]
    row = conn.execute(
        "SELECT password_hash, role, disabled, coalesce(locked_until > now(), false) "
        "FROM finsync.console_users WHERE username = %s FOR UPDATE",
        (username,),
    ).fetchone()
    if row is None:
        _verify(_dummy_hash(), password)
        return None
    hashed, role, disabled, locked = row
    ok = _verify(hashed, password)
    if locked or disabled:
        return None  # a locked user's tries neither count nor unlock
    if not ok:
        conn.execute(
            "UPDATE finsync.console_users SET "
            "locked_until = CASE WHEN failed_logins + 1 >= %(max)s "
            "    THEN now() + make_interval(secs => %(lock)s) END, "
            "failed_logins = CASE WHEN failed_logins + 1 >= %(max)s "
            "    THEN 0 ELSE failed_logins + 1 END "
            "WHERE username = %(user)s",
            {"max": MAX_FAILURES, "lock": LOCK_SECONDS, "user": username},
        )
        return None
    rehashed = HASHER.hash(password) if HASHER.check_needs_rehash(hashed) else hashed
    conn.execute(
        "UPDATE finsync.console_users SET failed_logins = 0, locked_until = NULL, "
        "last_login = now(), password_hash = %s WHERE username = %s",
        (rehashed, username),
    )
    return str(role)
