"""A finsync command left running in the background by `make demo` (the console, the
finance-analytics app): started once, found again by its pid file, stopped by `finsync stack
down`. A deployment runs these under its own supervisor instead.

The pid file holds the pid and a tag saying what the process serves (a database fingerprint,
a consumer group), so a demo never mistakes one started for something else for its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Background:
    command: tuple[str, ...]  # the finsync command, e.g. ("console", "serve")
    pidfile: Path
    probe: str  # a URL that answers 200 once it serves
    tag: str  # what it serves, beside its pid
    port_setting: str  # where to move it when its port is taken, e.g. FINSYNC_CONSOLE_PORT

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.probe, timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def pid(self) -> tuple[int, str] | None:
        """Its pid and tag, if the process of the pid file runs."""
        try:
            pid, tag = self.pidfile.read_text().split()
            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return None
        return int(pid), tag

    def ensure_running(self, log: Path, timeout: float = 30) -> None:
        """Start it unless ours already answers. Raises RuntimeError with the reason when it
        cannot start (say, the port is someone else's)."""
        ours = self.pid()
        if ours is not None and ours[1] == self.tag and self.answers():
            return
        if ours is not None:  # ours, but serving something else: make way
            self.stop()
            time.sleep(1.0)
        if self.answers():
            raise RuntimeError(f"something else answers at {self.probe}; set {self.port_setting}")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "finsync.cli.main", *self.command],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the demo, as the stack does
            )
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{proc.pid} {self.tag}")
        deadline = time.monotonic() + timeout
        name = " ".join(self.command)
        while not self.answers():
            if proc.poll() is not None:
                raise RuntimeError(f"`finsync {name}` exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"`finsync {name}` did not answer in {timeout:.0f} s; see {log}")
            time.sleep(0.3)

    def stop(self) -> None:
        stop_pidfile(self.pidfile)


def stop_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):  # gone already
        os.killpg(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    pidfile.unlink(missing_ok=True)
