"""Settings from the environment: every endpoint and credential is a FINSYNC_* variable.

Defaults are the ecosystem's usual local ones (Kafka 9092, registry 8081, PostgreSQL 5432),
which is where `finsync stack up` starts the embedded stack.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finsync.domain.write_off import Tolerance, Tolerances, parse_tolerance

KAFKA_LOG = logging.getLogger("finsync.kafka")
_BUDGET = "FINSYNC_RETRY_BUDGET_SECONDS_"  # + the service's name, e.g. ..._PAYMENT_SETTLER
_TOLERANCE = "FINSYNC_PAYMENT_TOLERANCE"  # every currency; + _<CURRENCY> for one, e.g. ..._JPY
_METRICS_PORT = "FINSYNC_METRICS_PORT_"  # + the service's name, e.g. ..._INVOICE_POSTER
# Where each service serves Prometheus /metrics unless FINSYNC_METRICS_PORT_<SERVICE> says
# otherwise (its relay child process: the port + 100); deploy/local/prometheus.yml scrapes them.
METRICS_PORTS = {
    "account-sync": 9464,
    "subscription-activator": 9465,
    "invoice-poster": 9466,
    "payment-settler": 9467,
}


def _project_root() -> Path:
    """The checkout this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _tolerances(env: Mapping[str, str]) -> Tolerances:
    """Write-off tolerances: FINSYNC_PAYMENT_TOLERANCE_<CURRENCY> for one currency, else
    FINSYNC_PAYMENT_TOLERANCE for every currency, else each currency's default."""

    def parse(name: str, value: str, currency: str | None = None) -> Tolerance:
        try:
            return parse_tolerance(value, currency)
        except ValueError as exc:
            raise SystemExit(f"{name}={value!r} {exc}") from None

    by_currency: dict[str, Tolerance] = {}
    for name, value in env.items():
        if name.startswith(f"{_TOLERANCE}_"):
            currency = name.removeprefix(f"{_TOLERANCE}_").upper()
            by_currency[currency] = parse(name, value, currency)
    overall = env.get(_TOLERANCE)
    return Tolerances(None if overall is None else parse(_TOLERANCE, overall), by_currency)


LOST_DISPUTE_POLICIES = ("reopen", "write-off")


def _lost_disputes(value: str) -> str:
    policy = value.strip().lower()
    if policy not in LOST_DISPUTE_POLICIES:
        choices = ", ".join(LOST_DISPUTE_POLICIES)
        raise SystemExit(f"FINSYNC_LOST_DISPUTES={value!r} is none of {choices}")
    return policy


def _metrics_ports(env: Mapping[str, str]) -> dict[str, int]:
    ports = {}
    for name, value in env.items():
        if name.startswith(_METRICS_PORT):
            if not value.strip().isdigit() or int(value) > 65535:
                raise SystemExit(f"{name}={value!r} is not a port (0 to 65535; 0: no /metrics)")
            ports[name.removeprefix(_METRICS_PORT).lower().replace("_", "-")] = int(value)
    return ports


def _replay_max(value: str) -> int:
    if not value.strip().isdigit():
        raise SystemExit(f"FINSYNC_REPLAY_MAX={value!r} is not a whole number (0 or more)")
    return int(value)


def _switch(name: str, value: str) -> bool:
    on = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
    if value.strip().lower() not in on:
        raise SystemExit(f"{name}={value!r} is neither on nor off")
    return on[value.strip().lower()]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry, as in some containers
        return "unknown"


@dataclass(frozen=True)
class Settings:
    home: Path
    kafka_port: int
    kafka_controller_port: int
    registry_port: int
    postgres_port: int
    kafka_bootstrap: str
    registry_url: str
    database_url: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_ca_location: str
    registry_basic_auth: str
    registry_ca_location: str
    registry_timeout_seconds: float  # for any one request to the schema registry
    topic_partitions: int
    batch_size: int
    session_timeout_seconds: float  # a member silent this long leaves its group
    retry_base_seconds: float
    retry_max_seconds: float
    inbox_retention_days: int
    retry_budget_seconds: float  # how long a missing dependency is retried before a dead letter
    retry_budgets: Mapping[str, float]  # per service, from FINSYNC_RETRY_BUDGET_SECONDS_<SERVICE>
    dlq_retention_days: int  # -1: dead letters are kept until someone deletes them
    db_statement_timeout_seconds: float
    db_lock_timeout_seconds: float
    db_idle_in_transaction_timeout_seconds: float
    db_keepalive_seconds: int  # TCP keepalive idle time, both ends of every connection
    payment_tolerances: Tolerances  # write-off tolerance per currency
    log_level: str
    stack_security: str
    operator: str  # who closes and opens accounting periods, for their audit
    # How a lost dispute is booked: `reopen` (the invoices the payment paid open again, its
    # unapplied cash comes off) or `write-off` (the amount goes to 6900 at once).
    lost_disputes: str = "reopen"
    # When an invoice posts, its holder's customer credit and unapplied cash go to its open
    # invoices (FINSYNC_AUTO_APPLY=off: they wait; earmarked prepayments still apply).
    auto_apply: bool = True
    # A dead letter whose content was replayed and failed again this often is not replayed
    # again unless forced (`finsync dlq replay --force`): the loop guard.
    replay_max: int = 3
    # The ops console (`finsync console serve`): where it listens, and whether its session
    # cookie is Secure (on behind HTTPS; off for plain http on localhost).
    console_host: str = "127.0.0.1"
    console_port: int = 8180
    console_secure_cookies: bool = False
    # Prometheus /metrics: per service from FINSYNC_METRICS_PORT_<SERVICE> (0: none), else
    # METRICS_PORTS; the interface they listen on; the local stack's Prometheus server.
    metrics_ports: Mapping[str, int] = field(default_factory=dict)
    metrics_host: str = "0.0.0.0"
    prometheus_port: int = 9090
    # finance-analytics: where its web views serve the figures (the console and `finsync kpis`
    # read them there), and how often at most it publishes changed figures.
    analytics_host: str = "127.0.0.1"
    analytics_port: int = 6066
    analytics_publish_seconds: float = 5.0
    # Its consumer group, which also names its changelog topics: a new name counts from scratch.
    analytics_group: str = "finance-analytics"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return e.get(f"FINSYNC_{name}", default)

        kafka_port = int(get("KAFKA_PORT", "9092"))
        registry_port = int(get("REGISTRY_PORT", "8081"))
        postgres_port = int(get("POSTGRES_PORT", "5432"))
        return cls(
            home=Path(get("HOME", str(_project_root() / ".finsync"))),
            kafka_port=kafka_port,
            kafka_controller_port=int(get("KAFKA_CONTROLLER_PORT", "9093")),
            registry_port=registry_port,
            postgres_port=postgres_port,
            kafka_bootstrap=get("KAFKA_BOOTSTRAP", f"localhost:{kafka_port}"),
            registry_url=get("REGISTRY_URL", f"http://localhost:{registry_port}/apis/ccompat/v7"),
            database_url=get(
                "DATABASE_URL",
                f"postgresql://finsync:finsync@localhost:{postgres_port}/finsync",
            ),
            kafka_security_protocol=get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            kafka_sasl_mechanism=get("KAFKA_SASL_MECHANISM", ""),
            kafka_sasl_username=get("KAFKA_SASL_USERNAME", ""),
            kafka_sasl_password=get("KAFKA_SASL_PASSWORD", ""),
            kafka_ssl_ca_location=get("KAFKA_SSL_CA_LOCATION", ""),
            registry_basic_auth=get("REGISTRY_BASIC_AUTH", ""),
            registry_ca_location=get("REGISTRY_CA_LOCATION", ""),
            registry_timeout_seconds=float(get("REGISTRY_TIMEOUT_SECONDS", "30")),
            topic_partitions=int(get("TOPIC_PARTITIONS", "3")),
            batch_size=int(get("BATCH_SIZE", "500")),
            session_timeout_seconds=float(get("SESSION_TIMEOUT_SECONDS", "10")),
            retry_base_seconds=float(get("RETRY_BASE_SECONDS", "1")),
            retry_max_seconds=float(get("RETRY_MAX_SECONDS", "300")),
            inbox_retention_days=int(get("INBOX_RETENTION_DAYS", "14")),
            retry_budget_seconds=float(get("RETRY_BUDGET_SECONDS", str(24 * 3600))),
            retry_budgets={
                name.removeprefix(_BUDGET).lower().replace("_", "-"): float(value)
                for name, value in e.items()
                if name.startswith(_BUDGET)
            },
            dlq_retention_days=int(get("DLQ_RETENTION_DAYS", "-1")),
            db_statement_timeout_seconds=float(get("DB_STATEMENT_TIMEOUT_SECONDS", "60")),
            db_lock_timeout_seconds=float(get("DB_LOCK_TIMEOUT_SECONDS", "10")),
            db_idle_in_transaction_timeout_seconds=float(
                get("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", "60")
            ),
            db_keepalive_seconds=int(get("DB_KEEPALIVE_SECONDS", "30")),
            payment_tolerances=_tolerances(e),
            log_level=get("LOG_LEVEL", "INFO"),
            stack_security=get("STACK_SECURITY", "plaintext"),
            operator=get("OPERATOR", "") or _os_user(),
            lost_disputes=_lost_disputes(get("LOST_DISPUTES", "reopen")),
            auto_apply=_switch("FINSYNC_AUTO_APPLY", get("AUTO_APPLY", "on")),
            replay_max=_replay_max(get("REPLAY_MAX", "3")),
            console_host=get("CONSOLE_HOST", "127.0.0.1"),
            console_port=int(get("CONSOLE_PORT", "8180")),
            console_secure_cookies=_switch(
                "FINSYNC_CONSOLE_SECURE_COOKIES", get("CONSOLE_SECURE_COOKIES", "off")
            ),
            metrics_ports=_metrics_ports(e),
            metrics_host=get("METRICS_HOST", "0.0.0.0"),
            prometheus_port=int(get("PROMETHEUS_PORT", "9090")),
            analytics_host=get("ANALYTICS_HOST", "127.0.0.1"),
            analytics_port=int(get("ANALYTICS_PORT", "6066")),
            analytics_publish_seconds=float(get("ANALYTICS_PUBLISH_SECONDS", "5")),
            analytics_group=get("ANALYTICS_GROUP", "finance-analytics"),
        )

    @property
    def analytics_url(self) -> str:
        return f"http://{self.analytics_host}:{self.analytics_port}"

    def metrics_port(self, service: str) -> int:
        """Where `service` serves Prometheus /metrics; 0: it serves none."""
        return self.metrics_ports.get(service, METRICS_PORTS.get(service, 0))

    def retry_budget(self, service: str) -> float:
        """Seconds a transient failure of `service` is retried before it is dead-lettered."""
        return self.retry_budgets.get(service, self.retry_budget_seconds)

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every client: endpoint, security, and where its log
        lines go: through Python logging like every other line (JSON in a service, a file in
        the demo), never raw on a terminal."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
            "logger": KAFKA_LOG,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password
        if self.kafka_ssl_ca_location:
            config["ssl.ca.location"] = self.kafka_ssl_ca_location
        return config

    def registry_config(self) -> dict[str, object]:
        # A registry that takes a connection and never answers must not hang a service (the
        # client waits forever by default): past the timeout it is an outage, and retried.
        config: dict[str, object] = {
            "url": self.registry_url,
            "timeout": self.registry_timeout_seconds,
        }
        if self.registry_basic_auth:
            config["basic.auth.user.info"] = self.registry_basic_auth
        if self.registry_ca_location:
            config["ssl.ca.location"] = self.registry_ca_location
        return config
