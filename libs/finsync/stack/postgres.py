"""PostgreSQL of the local stack: Debian's server binaries, a cluster under the state folder.

initdb and the server refuse to run as root, so as root the cluster belongs to the
`postgres` system user (created by Debian's package) and its commands run through runuser.
The cluster holds the databases of role `finsync`: `finsync` (services, reference ERP),
`finsync_registry` (the schema registry's storage), `finsync_bench` (`make bench`, `make
chaos`), `finsync_peers` (the framework peers `make bench` runs beside invoice-poster) and
`finsync_test` (`make test`, so tests never write into the books of `finsync`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from finsync.settings import Settings
from finsync.stack.process import StackError, port_open

DATABASES = ("finsync", "finsync_registry", "finsync_bench", "finsync_peers", "finsync_test")
ROLE, PASSWORD = "finsync", "finsync"
SYSTEM_USER = "postgres"


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return found[0].parent if found else None


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(_as_owner(argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"PostgreSQL: {what} failed:\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def _paths(settings: Settings) -> tuple[Path, Path, Path]:
    root = settings.home / "postgres"
    return root / "data", root / "run", root / "postgres.log"


def install(settings: Settings, say: Callable[[str], None] = print) -> None:
    if _bindir() is None:
        if os.geteuid() != 0:
            raise StackError("PostgreSQL server is not installed: run `apt-get install postgresql`")
        say("installing PostgreSQL from Debian's packages (apt-get install postgresql)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
            done = subprocess.run(argv, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise StackError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        # Debian's package starts its own cluster on 5432; ours replaces it.
        subprocess.run(["service", "postgresql", "stop"], capture_output=True)
    data, run, _ = _paths(settings)
    if (data / "PG_VERSION").exists():
        return
    bindir = _bindir()
    assert bindir is not None
    say(f"creating the PostgreSQL cluster in {data}")
    for d in (data.parent, data, run):
        d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(d, SYSTEM_USER, SYSTEM_USER)
    _make_traversable(settings.home)
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SYSTEM_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        "initdb",
    )


def _make_traversable(path: Path) -> None:
    """The postgres user must reach the data folder inside a root-owned checkout."""
    if os.geteuid() != 0:
        return
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


def running(settings: Settings) -> bool:
    data, _, _ = _paths(settings)
    bindir = _bindir()
    if bindir is None or not (data / "PG_VERSION").exists():
        return False
    done = subprocess.run(
        _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "status"]), capture_output=True
    )
    return done.returncode == 0


def start(settings: Settings, say: Callable[[str], None] = print) -> None:
    install(settings, say)
    bindir = _bindir()
    assert bindir is not None
    data, run, log = _paths(settings)
    if not running(settings):
        if port_open(settings.postgres_port):
            raise StackError(
                f"port {settings.postgres_port} is taken by another server; stop it or set "
                "FINSYNC_POSTGRES_PORT"
            )
        say(f"starting PostgreSQL on localhost:{settings.postgres_port}")
        options = (
            f"-p {settings.postgres_port} -k {run} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            f"start (log: {log})",
        )
    _provision(settings, bindir, run)


def _psql(settings: Settings, bindir: Path, run: Path, sql: str, db: str = "postgres") -> str:
    return _run(
        [
            str(bindir / "psql"),
            "-h",
            str(run),
            "-p",
            str(settings.postgres_port),
            "-U",
            SYSTEM_USER,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ],
        f"psql {sql[:40]!r}",
    )


def _provision(settings: Settings, bindir: Path, run: Path) -> None:
    """Role and databases, created once."""
    if not _psql(settings, bindir, run, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
        _psql(settings, bindir, run, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
    for db in DATABASES:
        if not _psql(settings, bindir, run, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
            _psql(settings, bindir, run, f"CREATE DATABASE {db} OWNER {ROLE}")


def stop(settings: Settings) -> None:
    if not running(settings):
        return
    bindir = _bindir()
    assert bindir is not None
    data, _, _ = _paths(settings)
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], "stop")


def status(settings: Settings) -> tuple[bool, str]:
    if not running(settings):
        return False, "stopped"
    return True, f"running on localhost:{settings.postgres_port} (data {_paths(settings)[0]})"
