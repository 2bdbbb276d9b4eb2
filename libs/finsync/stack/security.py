"""The secure profile of the local stack: FINSYNC_STACK_SECURITY=scram-tls.

Kafka then serves clients on SASL_SSL only (SCRAM-SHA-512) and the schema registry on HTTPS
with basic auth. What that takes is made once per stack home, in settings.home/security (0700):

    ca.crt                 the CA clients verify Kafka and the registry with (public)
    ca.key                 the CA's private key (0600)
    server.pem             server key, certificate (SAN localhost, 127.0.0.1) and CA (0600)
    credentials.env        the clients' FINSYNC_* user names and passwords (0600)
    broker.password        the broker's own SCRAM password, for inter-broker links (0600)
    registry.properties    the registry's TLS and basic-auth configuration, with its user (0600)

Secrets are handed to the processes the stack starts through files or the environment, never
their command line, and are never printed: `exports` prints where to read them from.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from finsync.settings import Settings
from finsync.stack.process import StackError

PLAINTEXT, SCRAM_TLS = "plaintext", "scram-tls"
PROFILES = (PLAINTEXT, SCRAM_TLS)
SASL_MECHANISM = "SCRAM-SHA-512"
CLIENT_USER = "finsync"  # on Kafka and on the registry, each with a password of its own
BROKER_USER = "finsync-broker"
CA_DAYS, SERVER_DAYS = 3650, 825
RENEW_BEFORE = datetime.timedelta(days=30)  # a server certificate this close to expiry is renewed


def profile(settings: Settings) -> str:
    if settings.stack_security not in PROFILES:
        raise StackError(
            f"FINSYNC_STACK_SECURITY={settings.stack_security!r} is not a profile of the local "
            f"stack; use one of: {', '.join(PROFILES)}"
        )
    return settings.stack_security


def enabled(settings: Settings) -> bool:
    return profile(settings) == SCRAM_TLS


def claim(settings: Settings, running: bool) -> None:
    """Record the profile the stack is started in. While it runs, starting it in another
    profile is refused: the health checks would fail and stop what is running."""
    marker = settings.home / "run" / "security-profile"
    wanted = profile(settings)
    current = marker.read_text().strip() if marker.exists() else PLAINTEXT
    if running and current != wanted:
        raise StackError(
            f"the stack in {settings.home} is running with FINSYNC_STACK_SECURITY={current}; "
            f"stop it (`finsync stack down`) before starting it with {wanted}"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(wanted + "\n")


@dataclasses.dataclass(frozen=True)
class Files:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_pem(self) -> Path:
        return self.folder / "server.pem"

    @property
    def credentials(self) -> Path:
        return self.folder / "credentials.env"

    @property
    def broker_password(self) -> Path:
        return self.folder / "broker.password"

    @property
    def registry_config(self) -> Path:
        return self.folder / "registry.properties"


def files(settings: Settings) -> Files:
    return Files(settings.home / "security")


def write_private(path: Path, data: str | bytes) -> None:
    """Write a file only its owner can read, atomically: never readable by others, not even
    for a moment, and never left half-written."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(partial, path)


def ensure(settings: Settings, say: Callable[[str], None] = print) -> Files:
    """Certificates and credentials of this stack home, made the first time they are needed."""
    f = files(settings)
    f.folder.mkdir(parents=True, exist_ok=True)
    f.folder.chmod(0o700)
    new_ca = not (f.ca_cert.exists() and f.ca_key.exists())
    if new_ca:
        say(f"creating a certificate authority for the local stack in {f.folder}")
        _write_ca(f)
    if new_ca or _expiring(f.server_pem):
        _write_server_certificate(f)
    if not f.credentials.exists():
        say(f"creating the stack's credentials in {f.credentials}")
        lines = {
            "FINSYNC_KAFKA_SASL_USERNAME": CLIENT_USER,
            "FINSYNC_KAFKA_SASL_PASSWORD": _password(),
            "FINSYNC_REGISTRY_BASIC_AUTH": f"{CLIENT_USER}:{_password()}",
        }
        write_private(f.credentials, "".join(f"{k}={v}\n" for k, v in lines.items()))
    if not f.broker_password.exists():
        write_private(f.broker_password, _password() + "\n")
    return f


def _password() -> str:
    # URL-safe characters only, so the value needs no quoting in a shell, a JAAS config or
    # Kafka's --add-scram syntax.
    return secrets.token_urlsafe(24)


def credentials(settings: Settings) -> dict[str, str]:
    """The clients' FINSYNC_* credentials of this stack home."""
    path = files(settings).credentials
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StackError(
            f"no credentials in {path}: start the stack with FINSYNC_STACK_SECURITY={SCRAM_TLS} "
            "first (`finsync stack up`)"
        ) from None
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def registry_user(settings: Settings) -> tuple[str, str]:
    user, _, password = credentials(settings)["FINSYNC_REGISTRY_BASIC_AUTH"].partition(":")
    return user, password


def broker_password(settings: Settings) -> str:
    return files(settings).broker_password.read_text().strip()


def client_settings(settings: Settings, registry_url: str) -> Settings:
    """`settings` as a client of this stack sees it: SASL_SSL, HTTPS, this home's CA and
    credentials. The plaintext profile leaves settings as they are."""
    if not enabled(settings):
        return settings
    creds = credentials(settings)
    ca = str(files(settings).ca_cert)
    return dataclasses.replace(
        settings,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=SASL_MECHANISM,
        kafka_sasl_username=creds["FINSYNC_KAFKA_SASL_USERNAME"],
        kafka_sasl_password=creds["FINSYNC_KAFKA_SASL_PASSWORD"],
        kafka_ssl_ca_location=ca,
        registry_url=registry_url,
        registry_basic_auth=creds["FINSYNC_REGISTRY_BASIC_AUTH"],
        registry_ca_location=ca,
    )


def exports(settings: Settings, registry_url: str) -> list[str]:
    """Shell lines that point a client at this stack; the passwords stay in their file."""
    f = files(settings)
    plain = {
        "FINSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FINSYNC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FINSYNC_KAFKA_SASL_MECHANISM": SASL_MECHANISM,
        "FINSYNC_KAFKA_SSL_CA_LOCATION": str(f.ca_cert),
        "FINSYNC_REGISTRY_URL": registry_url,
        "FINSYNC_REGISTRY_CA_LOCATION": str(f.ca_cert),
    }
    return [
        *(f"export {k}={v}" for k, v in plain.items()),
        "# user names and passwords (FINSYNC_KAFKA_SASL_USERNAME, FINSYNC_KAFKA_SASL_PASSWORD,",
        "# FINSYNC_REGISTRY_BASIC_AUTH), read from a file only you can read:",
        f"set -a; . {f.credentials}; set +a",
    ]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: the form both Kafka's PEM key store and Quarkus read; the file's
    # mode protects it.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_ca(f: Files) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("finsync local stack CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(f.ca_key, _pem_key(key))
    f.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    f.ca_cert.chmod(0o644)


def _write_server_certificate(f: Files) -> None:
    ca_key = serialization.load_pem_private_key(f.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # One file with the key and the chain: what Kafka's PEM key store expects, and Quarkus
    # reads its certificate and its key from the same file.
    chain = cert.public_bytes(serialization.Encoding.PEM) + f.ca_cert.read_bytes()
    write_private(f.server_pem, _pem_key(key) + chain)


def _expiring(server_pem: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(server_pem.read_bytes())
    except (FileNotFoundError, ValueError):
        return True
    return cert.not_valid_after_utc - _now() < RENEW_BEFORE
