"""Background processes of the local stack: started detached, logged to files, tracked by pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A part of the local stack could not be installed, started or reached."""


@dataclass(frozen=True)
class Daemon:
    """One long-running process of the stack, with its pid file and log file under `run_dir`."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(
        self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Start detached (own session, so Ctrl-C in the caller's terminal does not reach it)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**_without_finsync(os.environ), **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: not _alive(pid), timeout):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not _alive(pid), 10)
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        """The log's last lines without Java stack frames, which would push the error out."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join([x for x in text.splitlines() if not x.startswith("\t")][-lines:])

    def await_ready(
        self, what: str, answers: Callable[[], bool], timeout: float, interval: float = 0.5
    ) -> None:
        """Wait until `answers()`; if the process dies or the time runs out, say why."""

        def ready() -> bool:
            if self.pid() is None:
                raise StackError(f"{what} exited during startup:\n{self.log_tail()}")
            return answers()

        if not wait_for(ready, timeout, interval):
            tail = self.log_tail()
            self.stop()
            raise StackError(f"{what} did not answer within {timeout:.0f} s:\n{tail}")

    def status(self, answers: Callable[[], bool], where: str) -> tuple[bool, str]:
        """(healthy, one line for humans)."""
        pid = self.pid()
        if pid is None:
            return False, "stopped"
        if answers():
            return True, f"running pid {pid} {where}"
        return False, f"not answering: pid {pid} {where}"


def _without_finsync(env: Mapping[str, str]) -> dict[str, str]:
    """The daemons need none of finsync's own settings, and some of those are passwords."""
    return {k: v for k, v in env.items() if not k.startswith("FINSYNC_")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def output_tail(result: subprocess.CompletedProcess[str], lines: int = 30) -> str:
    """The end of a finished command's output, for an error message."""
    # Debian's mvn prints colour resets even in batch mode; they only garble an error message.
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
