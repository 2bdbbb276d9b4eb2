"""Services as processes: `finsync run NAME` in the background, its log in a file.

Used by the demo and the end-to-end tests, which run every service the way production does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path


class ServiceProcess:
    def __init__(self, name: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = {**os.environ, **(env or {})}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "finsync.cli.main", "run", self.name],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: the service and its relay
            )
        if wait:
            self.wait_log("started", 60)
        return self

    def wait_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in {self.log} after {timeout:.0f} s")
            time.sleep(0.2)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, and wait for the graceful stop; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                # What it is stuck on goes to its log; then it and its relay are gone, so a
                # stuck member does not hold its group's partitions for whatever runs next.
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(1.0)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise RuntimeError(
                    f"{self.name} did not stop on SIGTERM in {timeout:.0f} s; its threads' "
                    f"stacks are at the end of {self.log}"
                ) from exc
        return self.proc.returncode
