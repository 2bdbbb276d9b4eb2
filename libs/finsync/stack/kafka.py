"""A single-node Apache Kafka broker (KRaft, broker and controller in one JVM) for the local stack.

The jars come from Maven Central through deploy/local/kafka/pom.xml, so no tarball download or
container is needed; everything else (config, cluster id, data, logs) lives under settings.home.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from finsync.settings import Settings
from finsync.stack import security
from finsync.stack.process import Daemon, StackError, output_tail, port_open

POM = Path(__file__).resolve().parents[3] / "deploy" / "local" / "kafka" / "pom.xml"
LOG4J2_CONFIG = Path(__file__).with_name("kafka-log4j2.xml")
START_TIMEOUT = 90.0
# Lean on purpose: the machine has 2 cores and other JVMs (registry) run beside the broker.
JVM_OPTS = [
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
]


def _dir(settings: Settings) -> Path:
    return settings.home / "kafka"


def _libs(settings: Settings) -> Path:
    return _dir(settings) / "libs"


def _daemon(settings: Settings) -> Daemon:
    return Daemon("kafka", settings.home / "run")


def _java_cp(settings: Settings) -> list[str]:
    return ["java", *JVM_OPTS, "-cp", f"{_libs(settings)}/*"]


def _pom_version() -> str | None:
    """The Kafka version the pom asks for, so a bumped pom triggers a re-install."""
    try:
        found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    except FileNotFoundError:
        return None
    return found.group(1).strip() if found else None


def installed_version(settings: Settings) -> str | None:
    jars = sorted(_libs(settings).glob("kafka_2.13-*.jar"))
    return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else None


def install(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Copy the broker's jars into settings.home/kafka/libs (a no-op when they are there)."""
    have, want = installed_version(settings), _pom_version()
    if have is not None and want in (None, have):
        return
    if want is None:
        raise StackError(f"cannot install Kafka: {POM} not found (needs a source checkout)")
    if shutil.which("mvn") is None:
        raise StackError("cannot install Kafka: Maven (mvn) is not on PATH")
    say(f"installing Kafka {want} jars from Maven Central ...")
    libs = _libs(settings)
    # Copy into a scratch dir and rename at the end, so an interrupted copy never looks installed.
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={partial}"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        raise StackError(f"installing Kafka failed ({' '.join(cmd)}):\n{output_tail(result)}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)


def _server_properties(settings: Settings) -> str:
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{settings.kafka_port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://localhost:{settings.kafka_port},"
        f"CONTROLLER://{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        # Dynamic quorum (KIP-853): formatted once with --standalone, this node is the only voter.
        "controller.quorum.bootstrap.servers": controller,
        "log.dirs": str(_dir(settings) / "data"),
        # Topics are provisioned by finsync itself; a typo must fail, not create a topic.
        "auto.create.topics.enable": "false",
        "num.partitions": str(settings.topic_partitions),
        # One node: every internal topic has to live with a single replica.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fewer internal partitions and threads than the production defaults: faster, lighter.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # Tests start consumers right away; don't wait 3 s for more group members.
        "group.initial.rebalance.delay.ms": "0",
    }
    if security.enabled(settings):
        props.update(_secure_properties(settings))
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _secure_properties(settings: Settings) -> dict[str, str]:
    """Clients get one listener, SASL_SSL with SCRAM; the broker talks to itself on it too.
    The controller listener stays PLAINTEXT on 127.0.0.1: KRaft controllers cannot use SCRAM
    (its credentials live in the metadata they serve), and clients are never sent there."""
    f = security.files(settings)
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{security.BROKER_USER}" password="{security.broker_password(settings)}";'
    )
    mechanism = security.SASL_MECHANISM
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{settings.kafka_port},CONTROLLER://{controller}",
        "advertised.listeners": f"SASL_SSL://localhost:{settings.kafka_port},"
        f"CONTROLLER://{controller}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": mechanism,
        "sasl.mechanism.inter.broker.protocol": mechanism,
        f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(f.server_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(f.ca_cert),
    }


def _cluster_id(settings: Settings) -> str:
    """Kept in a file so a re-format (e.g. after wiping data/) reuses the same id."""
    path = _dir(settings) / "cluster.id"
    if not path.exists():
        while True:  # Kafka's own generator also rejects ids that would look like a CLI flag
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                break
        path.write_text(cid + "\n")
    return path.read_text().strip()


def _format_storage(settings: Settings, config: Path, say: Callable[[str], None]) -> None:
    profile = security.profile(settings)
    marker = _dir(settings) / "formatted-for"  # the profile the storage was formatted for
    if (_dir(settings) / "data" / "meta.properties").exists():
        formatted_for = marker.read_text().strip() if marker.exists() else security.PLAINTEXT
        if profile == security.SCRAM_TLS and formatted_for != profile:
            raise StackError(
                f"the Kafka storage in {_dir(settings) / 'data'} was formatted without SCRAM "
                f"users, which FINSYNC_STACK_SECURITY={profile} needs: use another FINSYNC_HOME, "
                "or run `finsync stack down` and delete that folder (its topics are lost)"
            )
        return
    say("formatting Kafka storage (KRaft, single-node quorum) ...")
    args = ["kafka.tools.StorageTool", "format", "--standalone",
            "--cluster-id", _cluster_id(settings), "--config", str(config)]  # fmt: skip
    if profile == security.SCRAM_TLS:
        users = [
            (security.CLIENT_USER, security.credentials(settings)["FINSYNC_KAFKA_SASL_PASSWORD"]),
            (security.BROKER_USER, security.broker_password(settings)),
        ]
        for name, password in users:
            args += ["--add-scram", f"{security.SASL_MECHANISM}=[name={name},password={password}]"]
    # The arguments go through a file only we can read (java's @argfile), so the passwords
    # never show in the process list; no perf data file records them either.
    argfile = _dir(settings) / "format.args"
    security.write_private(argfile, "".join(f'"{a}"\n' for a in args))
    try:
        cmd = [*_java_cp(settings), "-XX:-UsePerfData", f"@{argfile}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        argfile.unlink()
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{output_tail(result)}")
    marker.write_text(profile + "\n")


def _answers(settings: Settings, timeout: float = 3.0) -> bool:
    """True once the broker serves metadata (the port alone opens before it is usable)."""
    if not port_open(settings.kafka_port):
        return False
    try:
        # The {**...} copy widens dict[str, str] to the value type AdminClient is annotated with.
        metadata = AdminClient({**settings.kafka_config()}).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def start(settings: Settings, say: Callable[[str], None] = print) -> None:
    """Install, configure, format (first time only) and start the broker; wait until it answers."""
    daemon = _daemon(settings)
    if daemon.pid() is None:
        for port in (settings.kafka_port, settings.kafka_controller_port):
            if port_open(port):
                raise StackError(f"port {port} is taken by a process finsync did not start")
        install(settings, say)
        kafka_dir = _dir(settings)
        kafka_dir.mkdir(parents=True, exist_ok=True)
        config = kafka_dir / "server.properties"
        security.write_private(config, _server_properties(settings))  # may hold a password
        _format_storage(settings, config, say)
        pid = daemon.start([*_java_cp(settings), "kafka.Kafka", str(config)], cwd=kafka_dir)
        say(f"starting Kafka {installed_version(settings)} (pid {pid}) ...")
    elif _answers(settings):
        return

    daemon.await_ready("Kafka", lambda: _answers(settings), START_TIMEOUT, interval=1.0)
    say(f"Kafka is up on {settings.kafka_bootstrap}")


def running(settings: Settings) -> bool:
    return _daemon(settings).pid() is not None


def stop(settings: Settings) -> None:
    """SIGTERM lets Kafka shut down cleanly (no log recovery on the next start)."""
    _daemon(settings).stop()


def status(settings: Settings) -> tuple[bool, str]:
    """(healthy, one line for humans)."""
    return _daemon(settings).status(
        lambda: _answers(settings),
        f"on {settings.kafka_bootstrap}, Kafka {installed_version(settings)}",
    )
