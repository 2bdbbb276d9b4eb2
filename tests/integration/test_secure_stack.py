"""The secure profile of the local stack (FINSYNC_STACK_SECURITY=scram-tls), for real.

A stack of its own — temporary home, other ports, its own PostgreSQL, registry in memory — is
brought up with `finsync stack up` as an operator would, and invoice-poster runs through it:
Kafka on SASL_SSL with SCRAM-SHA-512 only, the registry on HTTPS with basic auth only. The
default stack and its books are not touched.
"""

from __future__ import annotations

import http.client
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from cryptography import x509

from finsync.runtime.serde import Serde, registry_client
from finsync.scenario import documents
from finsync.settings import KAFKA_LOG, Settings
from finsync.stack import registry, security
from tests.support import ServiceProcess, TopicTail, eventually, journals, publish

pytestmark = pytest.mark.integration

UP_TIMEOUT = 150  # seconds; about 25 when the jars can be reused from the default stack


@dataclass(frozen=True)
class SecureStack:
    home: Path
    env: dict[str, str]  # what a client of this stack runs with, secrets included
    up_output: str

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def secrets(self) -> list[str]:
        f = security.files(self.settings)
        creds = security.credentials(self.settings)
        registry_password = creds["FINSYNC_REGISTRY_BASIC_AUTH"].partition(":")[2]
        broker = f.broker_password.read_text().strip()
        return [creds["FINSYNC_KAFKA_SASL_PASSWORD"], registry_password, broker]


def _free_ports(n: int) -> list[int]:
    """Free ports below Linux's ephemeral range (32768 up), where no client connection made
    meanwhile can take one before the stack listens on it."""
    ports: list[int] = []
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"no {n} free ports between 20000 and 32000")


def _reuse_installs(source: Path, home: Path) -> None:
    """Hard-link the broker's jars and the registry's distribution from the default stack's
    home, if installed: fetching them again would take most of this module's time. Links, so
    nothing the secure stack writes can reach the default stack's files (the registry's
    class-data archive, the one file written there at run time, is left out)."""
    libs = source / "kafka" / "libs"
    if libs.is_dir():
        shutil.copytree(libs, home / "kafka" / "libs", copy_function=os.link)
    dist = source / "registry" / f"apicurio-registry-{registry.VERSION}"
    if (dist / "quarkus-run.jar").exists():
        shutil.copytree(
            dist,
            home / "registry" / dist.name,
            copy_function=os.link,
            ignore=shutil.ignore_patterns("classes.jsa"),
        )


def _finsync(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finsync.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _client_env(base: dict[str, str], output: str) -> dict[str, str]:
    """Run the lines `finsync stack up` printed, as an operator pastes them into a shell."""
    lines = [x for x in output.splitlines() if x.startswith(("export ", "set -a"))]
    assert lines, output
    script = "\n".join([*lines, "env -0"])
    done = subprocess.run(["bash", "-c", script], env=base, capture_output=True, check=True)
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("FINSYNC_")} | base


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureStack]:
    # Not under pytest's temporary folders, which another pytest session may clean up.
    home = Path(tempfile.mkdtemp(prefix="finsync-secure-stack-"))
    _reuse_installs(Settings.from_env().home, home)
    kafka, controller, registry_port, postgres = _free_ports(4)
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINSYNC_")} | {
        "FINSYNC_STACK_SECURITY": "scram-tls",
        "FINSYNC_HOME": str(home),
        "FINSYNC_KAFKA_PORT": str(kafka),
        "FINSYNC_KAFKA_CONTROLLER_PORT": str(controller),
        "FINSYNC_REGISTRY_PORT": str(registry_port),
        "FINSYNC_POSTGRES_PORT": str(postgres),
        "FINSYNC_DATABASE_URL": f"postgresql://finsync:finsync@localhost:{postgres}/finsync",
        "FINSYNC_REGISTRY_STORAGE": "mem",
        "FINSYNC_TOPIC_PARTITIONS": "1",  # fewer topics' worth of files and threads
    }
    try:
        up = _finsync(base, "stack", "up", timeout=UP_TIMEOUT)
        output = up.stdout + up.stderr
        assert up.returncode == 0, output
        yield SecureStack(home, _client_env(base, output), output)
    finally:
        down = _finsync(base, "stack", "down", timeout=120)
        if down.returncode == 0:  # else keep the home and its logs, to see why
            shutil.rmtree(home, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr


def test_stack_up_prints_the_exports_and_no_secret(secure: SecureStack) -> None:
    f = security.files(secure.settings)
    out = secure.up_output
    assert "export FINSYNC_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in out
    assert "export FINSYNC_KAFKA_SASL_MECHANISM=SCRAM-SHA-512" in out
    assert f"export FINSYNC_KAFKA_SSL_CA_LOCATION={f.ca_cert}" in out
    assert f"export FINSYNC_REGISTRY_CA_LOCATION={f.ca_cert}" in out
    assert "export FINSYNC_REGISTRY_URL=https://localhost:" in out
    assert str(f.credentials) in out
    for secret in secure.secrets():
        assert secret not in out
    # The operator's shell ends up with everything a client needs.
    assert secure.env["FINSYNC_KAFKA_SASL_USERNAME"] == security.CLIENT_USER
    assert secure.env["FINSYNC_KAFKA_SASL_PASSWORD"] == secure.secrets()[0]


def test_a_second_stack_up_reuses_the_certificates_and_credentials(secure: SecureStack) -> None:
    f = security.files(secure.settings)
    before = [p.read_bytes() for p in (f.ca_cert, f.server_pem, f.credentials)]
    again = _finsync(secure.env, "stack", "up", timeout=UP_TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating" not in again.stdout
    assert [p.read_bytes() for p in (f.ca_cert, f.server_pem, f.credentials)] == before


def test_keys_and_credentials_are_private_and_the_certificate_names_localhost(
    secure: SecureStack,
) -> None:
    f = security.files(secure.settings)
    private = [f.ca_key, f.server_pem, f.credentials, f.broker_password, f.registry_config,
               secure.home / "kafka" / "server.properties"]  # fmt: skip
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(f.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.ca_cert.stat().st_mode) == 0o644  # public: clients read it
    cert = x509.load_pem_x509_certificate(f.server_pem.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # Nothing the stack wrote outside those files holds a secret: not its logs, its config or
    # Kafka's metadata (which keeps salted SCRAM credentials only).
    installed = (secure.home / "kafka" / "libs", secure.home / "registry")
    secrets = [x.encode() for x in secure.secrets()]
    holders = {
        p.name
        for p in secure.home.rglob("*")
        if p.is_file() and not any(p.is_relative_to(d) for d in installed)
        and any(x in p.read_bytes() for x in secrets)
    }  # fmt: skip
    assert holders <= {p.name for p in private}


def test_plaintext_and_anonymous_clients_are_refused(secure: SecureStack) -> None:
    s = secure.settings
    plain = AdminClient(
        {
            "bootstrap.servers": s.kafka_bootstrap,
            "security.protocol": "PLAINTEXT",
            "logger": KAFKA_LOG,
        }
    )
    with pytest.raises(KafkaException):
        plain.list_topics(timeout=3)
    ca = str(security.files(s).ca_cert)
    anonymous = SchemaRegistryClient({"url": s.registry_url, "ssl.ca.location": ca})
    with pytest.raises(SchemaRegistryError) as refused:
        anonymous.get_subjects()
    assert refused.value.http_status_code == 401
    # No plain-HTTP port: a plain request to the registry's port gets no answer.
    plain_url = s.registry_url.replace("https://", "http://") + "/subjects"
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        urllib.request.urlopen(plain_url, timeout=5)


def test_invoice_poster_posts_through_the_secure_stack(secure: SecureStack, tmp_path: Path) -> None:
    settings = secure.settings
    serde = Serde(registry_client(settings))
    tail = TopicTail(settings, "erp.invoice-posted")
    service = ServiceProcess("invoice-poster", tmp_path, secure.env).start()
    try:
        invoice = documents.invoice(random.Random(uuid.uuid4().int), 1)
        publish(settings, serde, [invoice])
        key = f"invoice:{invoice.invoice_id}"
        eventually(lambda: journals(settings, key) == 1, 30, "the posting")
        posted = eventually(
            lambda: [r for r in tail.poll(0.5) if r.key_text == invoice.invoice_id],
            30,
            "erp.invoice-posted",
        )
        event = serde.decode("erp.invoice-posted", posted[0].value)
        assert event.causation_id == str(invoice.event_id)  # type: ignore[attr-defined]
        # Secrets travel in files and the environment, never on a command line: not the
        # broker's, the registry's, the service's or its relay's.
        secrets = [x.encode() for x in secure.secrets()]
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes()
            except OSError:
                continue  # the process is gone
            assert not [x for x in secrets if x in argv], cmdline
    finally:
        tail.close()
        assert service.stop() == 0


def test_a_wrong_kafka_password_stops_a_service_at_once_naming_authentication(
    secure: SecureStack,
) -> None:
    env = secure.env | {"FINSYNC_KAFKA_SASL_PASSWORD": "not-the-password"}
    started = time.monotonic()
    done = _finsync(env, "run", "invoice-poster", timeout=30)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert took < 20, f"took {took:.0f} s"
    assert "Kafka authentication failed for user 'finsync'" in output
    assert "FINSYNC_KAFKA_SASL_PASSWORD" in output
    assert "not-the-password" not in output


def test_a_wrong_registry_password_is_refused_with_a_clear_error(secure: SecureStack) -> None:
    env = secure.env | {"FINSYNC_REGISTRY_BASIC_AUTH": "finsync:not-the-password"}
    done = _finsync(env, "schemas", "--check-only")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "refused our credentials (HTTP 401)" in output
    assert "FINSYNC_REGISTRY_BASIC_AUTH" in output
    assert "not-the-password" not in output
