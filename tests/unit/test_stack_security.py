"""The secure profile's certificates, credentials and configuration, without starting anything."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from finsync.settings import Settings
from finsync.stack import kafka, registry, security
from finsync.stack.process import StackError


def secure_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"FINSYNC_HOME": str(home), "FINSYNC_STACK_SECURITY": "scram-tls", **env}
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = secure_settings(tmp_path, FINSYNC_KAFKA_PORT="19092", FINSYNC_REGISTRY_PORT="18081")
    security.ensure(s, say=lambda _: None)
    return s


def secrets_of(settings: Settings) -> list[str]:
    creds = security.credentials(settings)
    return [
        creds["FINSYNC_KAFKA_SASL_PASSWORD"],
        security.registry_user(settings)[1],
        security.broker_password(settings),
    ]


def test_plaintext_is_the_default_and_an_unknown_profile_is_a_clear_error(tmp_path: Path) -> None:
    plain = Settings.from_env({"FINSYNC_HOME": str(tmp_path)})
    assert plain.stack_security == "plaintext"
    assert security.client_settings(plain, "http://x") is plain
    with pytest.raises(StackError, match=r"FINSYNC_STACK_SECURITY='tls'.*plaintext, scram-tls"):
        security.profile(Settings.from_env({"FINSYNC_STACK_SECURITY": "tls"}))


def test_keys_and_credentials_are_made_once_and_only_their_owner_reads_them(
    settings: Settings,
) -> None:
    f = security.files(settings)
    before = {p: p.read_bytes() for p in (f.ca_cert, f.ca_key, f.server_pem, f.credentials)}
    security.ensure(settings, say=lambda _: None)
    assert {p: p.read_bytes() for p in before} == before  # once per stack home
    for path in (f.ca_key, f.server_pem, f.credentials, f.broker_password):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(f.folder.stat().st_mode) == 0o700
    assert len(set(secrets_of(settings))) == 3  # each user a password of its own


def test_the_server_certificate_names_localhost_and_is_signed_by_the_ca(
    settings: Settings,
) -> None:
    f = security.files(settings)
    ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(f.server_pem.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert b"PRIVATE KEY" in f.server_pem.read_bytes()  # key and chain in one file


def test_clients_get_sasl_ssl_https_and_the_ca(settings: Settings) -> None:
    client = security.client_settings(settings, registry.url(settings))
    ca = str(security.files(settings).ca_cert)
    kafka_config = client.kafka_config()
    assert kafka_config["security.protocol"] == "SASL_SSL"
    assert kafka_config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert kafka_config["sasl.username"] == "finsync"
    assert kafka_config["ssl.ca.location"] == ca
    assert client.registry_config() == {
        "url": "https://localhost:18081/apis/ccompat/v7",
        "basic.auth.user.info": security.credentials(settings)["FINSYNC_REGISTRY_BASIC_AUTH"],
        "ssl.ca.location": ca,
        "timeout": 30.0,
    }


def test_the_exports_point_at_the_credentials_file_and_show_no_secret(settings: Settings) -> None:
    lines = security.exports(settings, registry.url(settings))
    text = "\n".join(lines)
    assert "export FINSYNC_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in lines
    assert f"set -a; . {security.files(settings).credentials}; set +a" in lines
    for secret in secrets_of(settings):
        assert secret not in text


def test_kafka_serves_clients_on_sasl_ssl_only(settings: Settings) -> None:
    props = dict(
        line.split("=", 1) for line in kafka._server_properties(settings).splitlines() if line
    )
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:9093"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert security.BROKER_USER in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]


def test_formatting_kafka_passes_the_scram_passwords_in_a_private_file_not_on_the_command_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[list[str], str, int]] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        argfile = Path(cmd[-1].removeprefix("@"))
        ran.append((cmd, argfile.read_text(), stat.S_IMODE(argfile.stat().st_mode)))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(kafka.subprocess, "run", fake_run)
    config = settings.home / "kafka" / "server.properties"
    config.parent.mkdir(parents=True)
    kafka._format_storage(settings, config, say=lambda _: None)

    [(cmd, args, mode)] = ran
    for secret in secrets_of(settings):
        assert secret not in " ".join(cmd)
    assert mode == 0o600
    assert args.count("--add-scram") == 2
    assert f"name={security.CLIENT_USER},password={secrets_of(settings)[0]}" in args
    assert not (settings.home / "kafka" / "format.args").exists()  # deleted afterwards


def test_storage_formatted_without_scram_users_is_refused_for_the_secure_profile(
    settings: Settings,
) -> None:
    data = settings.home / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("")
    with pytest.raises(StackError, match="formatted without SCRAM users"):
        kafka._format_storage(settings, settings.home / "x", say=lambda _: None)


def test_the_registry_gets_its_password_from_a_private_file(settings: Settings) -> None:
    env = registry._env(settings, "mem")
    path = Path(env["QUARKUS_CONFIG_LOCATIONS"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = path.read_text()
    user, password = security.registry_user(settings)
    assert f"quarkus.security.users.embedded.users.{user}={password}\n" in config
    assert "quarkus.http.insecure-requests=disabled\n" in config
    assert not [v for v in env.values() if password in v]


def test_a_running_stack_does_not_switch_profile(tmp_path: Path) -> None:
    plain = Settings.from_env({"FINSYNC_HOME": str(tmp_path)})
    security.claim(plain, running=False)
    with pytest.raises(StackError, match="running with FINSYNC_STACK_SECURITY=plaintext"):
        security.claim(secure_settings(tmp_path), running=True)
    security.claim(secure_settings(tmp_path), running=False)  # stopped: switching is fine
