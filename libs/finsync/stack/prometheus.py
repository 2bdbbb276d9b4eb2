"""Prometheus for the local stack, on request (`finsync stack up --prometheus`).

Debian's /usr/bin/prometheus (deploy/local/install-prometheus.sh installs it when missing)
scrapes the services' and the console's /metrics as deploy/local/prometheus.yml lists them,
with the ports this environment sets; its data stays under settings.home/prometheus. It is an
optional part: `stack status` shows it while it is meant to run (started and not stopped),
and `stack down` stops it with the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from finsync.runtime.metrics import relay_port
from finsync.settings import METRICS_PORTS, Settings
from finsync.stack.process import Daemon, StackError, output_tail, port_open

BINARY = Path("/usr/bin/prometheus")
LOCAL = Path(__file__).resolve().parents[3] / "deploy" / "local"
CONFIG = LOCAL / "prometheus.yml"
INSTALL = LOCAL / "install-prometheus.sh"
CONSOLE_PORT = 8180  # the console's default, as prometheus.yml lists it
RETENTION = "7d"  # a development stack: a week of history is plenty
START_TIMEOUT = 60.0


def _dir(settings: Settings) -> Path:
    return settings.home / "prometheus"


def _daemon(settings: Settings) -> Daemon:
    return Daemon("prometheus", settings.home / "run")


def url(settings: Settings) -> str:
    return f"http://localhost:{settings.prometheus_port}"


def install(say: Callable[[str], None] = print) -> None:
    if BINARY.exists():
        return
    say("installing Prometheus from Debian's packages (apt-get install prometheus)")
    done = subprocess.run([str(INSTALL)], capture_output=True, text=True)
    if done.returncode != 0 or not BINARY.exists():
        raise StackError(f"Prometheus could not be installed:\n{output_tail(done)}")


def _moved(target: str, ports: dict[int, int]) -> str | None:
    """`host:port` with the port as configured here; None if that process serves none."""
    host, _, port = target.rpartition(":")
    if not port.isdigit() or int(port) not in ports:
        return target
    moved = ports[int(port)]
    return f"{host}:{moved}" if moved else None


def config(settings: Settings, template: str | None = None) -> str:
    """prometheus.yml with each finsync target on the port this environment gives it: a job
    named after a service moves its ports (the service's and its relay's); `console` too."""
    doc: dict[str, Any] = yaml.safe_load(CONFIG.read_text() if template is None else template)
    for job in doc.get("scrape_configs") or []:
        name = job.get("job_name")
        if name in METRICS_PORTS:
            default, port = METRICS_PORTS[name], settings.metrics_port(name)
            ports = {default: port, relay_port(default): relay_port(port)}
        elif name == "console":
            ports = {CONSOLE_PORT: settings.console_port}
        else:
            continue
        for group in job.get("static_configs") or []:
            moved = (_moved(t, ports) for t in group.get("targets") or [])
            group["targets"] = [t for t in moved if t is not None]
    header = f"# Written by `finsync stack up --prometheus` from {CONFIG}; edit that one.\n"
    return header + str(yaml.safe_dump(doc, sort_keys=False))


def _answers(settings: Settings) -> bool:
    try:
        ready = f"http://127.0.0.1:{settings.prometheus_port}/-/ready"
        with urllib.request.urlopen(ready, timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _write_config(settings: Settings) -> tuple[Path, bool]:
    """The config file, and whether it changed."""
    path = _dir(settings) / "prometheus.yml"
    text = config(settings)
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path, changed


def start(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Install when missing, start, and wait until it is ready. A running one re-reads its
    config if the ports changed since (SIGHUP)."""
    daemon = _daemon(settings)
    pid = daemon.pid()
    if pid is not None:
        if _write_config(settings)[1]:
            os.kill(pid, signal.SIGHUP)
            say("Prometheus re-reads its config")
        if _answers(settings):
            return
    else:
        if port_open(settings.prometheus_port):
            raise StackError(
                f"port {settings.prometheus_port} is taken by a process finsync did not start; "
                "stop it or set FINSYNC_PROMETHEUS_PORT"
            )
        install(say)
        path, _ = _write_config(settings)
        argv = [
            str(BINARY),
            f"--config.file={path}",
            f"--storage.tsdb.path={_dir(settings) / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        ]
        pid = daemon.start(argv, cwd=_dir(settings))
        say(f"starting Prometheus (pid {pid}) ...")
    daemon.await_ready("Prometheus", lambda: _answers(settings), START_TIMEOUT)
    say(f"Prometheus is up on {url(settings)}")


def wanted(settings: Settings) -> bool:
    """Started and not stopped since (its pid file is there, even if it died)."""
    return _daemon(settings).pid_file.exists()


def running(settings: Settings) -> bool:
    return _daemon(settings).pid() is not None


def stop(settings: Settings) -> None:
    _daemon(settings).stop()


def status(settings: Settings) -> tuple[bool, str]:
    return _daemon(settings).status(
        lambda: _answers(settings), f"on {url(settings)}, its targets at {url(settings)}/targets"
    )
