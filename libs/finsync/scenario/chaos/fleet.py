"""The four services as processes under chaos: one instance of each that is SIGKILLed and
started again, a second one that joins the group and later leaves it, and a watch for any
that exits by itself — a finding, so it is recorded, and the instance started again so the
run can go on and show what else it broke.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from finsync.scenario.processes import ServiceProcess

START_TIMEOUT = 90.0  # seconds for an instance to subscribe
SUBSCRIBED = "consuming "  # the consumer loop's first line, once it has subscribed


@dataclass(frozen=True)
class Exit:
    """A service process that ended although nobody killed or stopped it, or stopped badly."""

    service: str
    what: str  # "exited with 1", "exit code 1 on SIGTERM", ...
    log: Path


class Fleet:
    def __init__(
        self, names: Sequence[str], logs: Path, env: dict[str, str], say: Callable[[str], None]
    ) -> None:
        self.names = list(names)
        self.logs = logs
        self.env = env
        self.say = say
        self.main: dict[str, ServiceProcess] = {}
        self.second: dict[str, ServiceProcess] = {}
        self.exits: list[Exit] = []
        self._lock = threading.Lock()  # the monkey and the watch change the same processes
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="fleet-watch", daemon=True)

    def _process(self, name: str) -> ServiceProcess:
        return ServiceProcess(name, self.logs, self.env).start(wait=False)

    def start(self) -> None:
        for name in self.names:
            self.main[name] = self._process(name)
        for process in self.main.values():
            process.wait_log(SUBSCRIBED, START_TIMEOUT)
        self._watch.start()

    def kill(self, name: str) -> None:
        """SIGKILL (its relay dies with it), and start it again at once."""
        with self._lock:
            self.main[name].kill()
            self.main[name] = self._process(name)

    def join(self, name: str) -> None:
        """A second instance: the group rebalances, partitions (and their retries) move."""
        with self._lock:
            self.second[name] = self._process(name)

    def leave(self, name: str) -> None:
        """The second instance stops gracefully: the group rebalances again."""
        with self._lock:
            process = self.second.pop(name, None)
            if process is not None:
                self._stop_one(process)

    def stop(self) -> None:
        """Stop every instance gracefully; one that does not exit 0 is recorded."""
        self._stop.set()
        if self._watch.is_alive():
            self._watch.join()
        with self._lock:
            for process in [*self.second.values(), *self.main.values()]:
                self._stop_one(process)
            self.second.clear()

    def _stop_one(self, process: ServiceProcess) -> None:
        # Stopped before it has subscribed, a process would not have joined the group (no
        # rebalance to speak of), or even set up its signal handlers (SIGTERM kills it).
        with contextlib.suppress(RuntimeError, TimeoutError):  # exited, or stuck: stop says
            process.wait_log(SUBSCRIBED, START_TIMEOUT)
        try:
            code = process.stop()
        except RuntimeError as exc:  # did not stop on SIGTERM
            self.exits.append(Exit(process.name, str(exc), process.log))
            return
        if code != 0:
            self.exits.append(Exit(process.name, f"ended with {code} when stopped", process.log))

    def _watch_loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._check()

    def _check(self) -> None:
        for instances in (self.main, self.second):
            for name, process in list(instances.items()):
                if process.running():
                    continue
                what = f"exited by itself with {process.proc and process.proc.returncode}"
                self.exits.append(Exit(name, what, process.log))
                self.say(f"[red]{name} {what}; see {process.log}[/red]")
                if instances is self.main:
                    self.main[name] = self._process(name)
                else:
                    del self.second[name]
