"""The console as a background process for `make demo`: started once, left running so the
demo's books can be explored after it ends, and stopped by `finsync stack down`.

A deployment runs `finsync console serve` under its own supervisor instead.
"""

from __future__ import annotations

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


def _pidfile(settings: Settings) -> Path:
    return settings.home / "run" / "console.pid"


def url(settings: Settings) -> str:
    return f"http://{settings.console_host}:{settings.console_port}"


def _answers(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{url(settings)}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _pid(settings: Settings) -> int | None:
    try:
        pid = int(_pidfile(settings).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def ensure_running(settings: Settings, log: Path, timeout: float = 30) -> str:
    """The console's address, starting it unless ours already answers there. Raises
    RuntimeError with the reason when it cannot start (say, the port is someone else's)."""
    if _pid(settings) is not None and _answers(settings):
        return url(settings)
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
    _pidfile(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while not _answers(settings):
        if proc.poll() is not None:
            raise RuntimeError(f"the console exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the console did not answer in {timeout:.0f} s; see {log}")
        time.sleep(0.3)
    return url(settings)


def stop(settings: Settings) -> None:
    pid = _pid(settings)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
    _pidfile(settings).unlink(missing_ok=True)


def ensure_demo_user(settings: Settings) -> Path:
    """An operator for the demo, its random password in a file only the owner reads: never on
    the terminal or in a log. Kept across demos; the file is written when the user is made."""
    secret = settings.home / "run" / "console-password"
    with db.connect(settings) as conn:
        if any(u.username == DEMO_USER for u in users.all_users(conn)) and secret.exists():
            return secret
        conn.execute("DELETE FROM finsync.console_users WHERE username = %s", (DEMO_USER,))
        password = secrets.token_urlsafe(18)
        users.add(conn, DEMO_USER, password, "operator")
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.touch(mode=0o600)
    secret.write_text(password + "\n")
    return secret
