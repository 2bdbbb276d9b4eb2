"""The console as a background process for `make demo` (stack/background.py): started once,
left running so the demo's books can be explored after it ends, stopped by `finsync stack down`.

A deployment runs `finsync console serve` under its own supervisor instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from finsync.console import users
from finsync.runtime import db
from finsync.settings import Settings
from finsync.stack.background import Background, stop_pidfile

DEMO_USER = "ops"


def _database(settings: Settings) -> str:
    return settings.database_url.rsplit("/", 1)[-1].split("?", 1)[0]


def _pidfile(settings: Settings) -> Path:
    """One per port: a console started for another database elsewhere is not this one."""
    return settings.home / "run" / f"console-{settings.console_port}.pid"


def _fingerprint(settings: Settings) -> str:
    """Which database a console serves, without writing its URL (and password) to disk."""
    return hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]


def url(settings: Settings) -> str:
    return f"http://{settings.console_host}:{settings.console_port}"


def _process(settings: Settings) -> Background:
    health = f"{url(settings)}/healthz"
    tag = _fingerprint(settings)
    return Background(("console", "serve"), _pidfile(settings), health, tag, "FINSYNC_CONSOLE_PORT")


def ensure_running(settings: Settings, log: Path, timeout: float = 30) -> str:
    """The console's address, starting it unless ours already answers there. Raises
    RuntimeError with the reason when it cannot start (say, the port is someone else's)."""
    _process(settings).ensure_running(log, timeout)
    return url(settings)


def stop_port(settings: Settings) -> None:
    """Stop the console this home started on the settings' port."""
    _process(settings).stop()


def stop(settings: Settings) -> None:
    """Stop the consoles this home started, on any port (`finsync stack down`)."""
    for pidfile in (settings.home / "run").glob("console-*.pid"):
        stop_pidfile(pidfile)


def secret_file(settings: Settings) -> Path:
    """Where the demo operator's password is kept: one file per database, so a demo played
    on another database never overwrites the password of this one's operator."""
    name = _database(settings)
    run = settings.home / "run"
    return run / "console-password" if name == "finsync" else run / f"console-password-{name}"


def ensure_demo_user(settings: Settings) -> Path:
    """An operator for the demo, its random password in a file only the owner reads: never on
    the terminal or in a log. Kept across demos; the file is written when the user is made."""
    secret = secret_file(settings)
    with db.connect(settings) as conn:
        exists = any(u.username == DEMO_USER for u in users.all_users(conn))
        if exists and secret.exists():
            return secret
        password = secrets.token_urlsafe(18)
        if exists:  # its password file is gone: a new password, the user and its audit stay
            users.set_password(conn, DEMO_USER, password)
        else:
            users.add(conn, DEMO_USER, password, "operator")
    secret.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that exists
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return secret
