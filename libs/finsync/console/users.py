"""The console's users: who may sign in, with which role, and their argon2id password hashes.

Two roles: a viewer sees everything; an operator may also replay, resolve, reopen and assign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import LiteralString

import psycopg
from argon2 import PasswordHasher

ROLES = ("viewer", "operator")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing megabytes of "password" would be a denial of service
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

# argon2-cffi's defaults are RFC 9106's low-memory profile of argon2id.
HASHER = PasswordHasher()


class UserError(ValueError):
    """A request about users that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_at: datetime
    disabled: bool
    last_login: datetime | None
    locked_until: datetime | None


def check_username(username: str) -> str:
    if not _NAME.fullmatch(username):
        raise UserError(
            "a username is 1 to 64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"the role is one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def add(conn: psycopg.Connection, username: str, password: str, role: str) -> None:
    check_username(username)
    check_role(role)
    hashed = HASHER.hash(check_password(password))
    try:
        conn.execute(
            "INSERT INTO finsync.console_users (username, password_hash, role) VALUES (%s, %s, %s)",
            (username, hashed, role),
        )
    except psycopg.errors.UniqueViolation:
        raise UserError(f"user {username} exists already") from None


def all_users(conn: psycopg.Connection) -> list[User]:
    rows = conn.execute(
        "SELECT username, role, created_at, disabled, last_login, "
        "CASE WHEN locked_until > now() THEN locked_until END "
        "FROM finsync.console_users ORDER BY username"
    ).fetchall()
    return [User(*row) for row in rows]


def _change(conn: psycopg.Connection, username: str, sql: LiteralString, *params: object) -> None:
    """One statement about one user (its last parameter the username); no user, an error."""
    if conn.execute(sql, (*params, username)).rowcount == 0:
        raise UserError(f"no user {username}")


def remove(conn: psycopg.Connection, username: str) -> None:
    """The user and every session of theirs (the sessions go with the row)."""
    _change(conn, username, "DELETE FROM finsync.console_users WHERE username = %s")


def set_password(conn: psycopg.Connection, username: str, password: str) -> None:
    """A new password ends the user's sessions and any lock."""
    hashed = HASHER.hash(check_password(password))
    _change(
        conn,
        username,
        "UPDATE finsync.console_users SET password_hash = %s, failed_logins = 0, "
        "locked_until = NULL WHERE username = %s",
        hashed,
    )
    conn.execute("DELETE FROM finsync.console_sessions WHERE username = %s", (username,))


def set_role(conn: psycopg.Connection, username: str, role: str) -> None:
    check_role(role)
    _change(conn, username, "UPDATE finsync.console_users SET role = %s WHERE username = %s", role)


def set_disabled(conn: psycopg.Connection, username: str, disabled: bool) -> None:
    """A disabled user cannot sign in, and their sessions end at once."""
    _change(
        conn,
        username,
        "UPDATE finsync.console_users SET disabled = %s WHERE username = %s",
        disabled,
    )
    if disabled:
        conn.execute("DELETE FROM finsync.console_sessions WHERE username = %s", (username,))
