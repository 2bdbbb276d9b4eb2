"""The console as a background process for `make demo`: started once, left running so the
demo's books can be explored after it ends, and stopped by `finsync stack down`.

A deployment runs `finsync console serve` under its own supervisor instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from finsync.console import users
from finsync.runtime import db
from finsync.settings import Settings

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


def _answers(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{url(settings)}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _pid(settings: Settings) -> tuple[int, str] | None:
    """Our console's pid on this port and the database it serves, if it runs."""
    try:
        pid, served = _pidfile(settings).read_text().split()
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return None
    return int(pid), served


def ensure_running(settings: Settings, log: Path, timeout: float = 30) -> str:
    """The console's address, starting it unless ours already answers there. Raises
    RuntimeError with the reason when it cannot start (say, the port is someone else's)."""
    ours = _pid(settings)
    if ours is not None and ours[1] == _fingerprint(settings) and _answers(settings):
        return url(settings)
    if ours is not None:  # ours, but for another database: make way
        stop_port(settings)
        time.sleep(1.0)
    if _answers(settings):
        raise RuntimeError(f"something else answers at {url(settings)}; set FINSYNC_CONSOLE_PORT")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsync.cli.main", "console", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the demo, as the stack does
        )
    _pidfile(settings).parent.mkdir(parents=True, exist_ok=True)
    _pidfile(settings).write_text(f"{proc.pid} {_fingerprint(settings)}")
    deadline = time.monotonic() + timeout
    while not _answers(settings):
        if proc.poll() is not None:
            raise RuntimeError(f"the console exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the console did not answer in {timeout:.0f} s; see {log}")
        time.sleep(0.3)
    return url(settings)


def _kill(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):  # gone already
        os.killpg(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    pidfile.unlink(missing_ok=True)


def stop_port(settings: Settings) -> None:
    """Stop the console this home started on the settings' port."""
    _kill(_pidfile(settings))


def stop(settings: Settings) -> None:
    """Stop the consoles this home started, on any port (`finsync stack down`)."""
    for pidfile in (settings.home / "run").glob("console-*.pid"):
        _kill(pidfile)


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
