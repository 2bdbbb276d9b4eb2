"""One run of a poster as a process over a range of events, with or without a fault: from a
reset database and its group at the range's first records, until every invoice is posted
and announced, or nothing has moved for a while.

Faults: `kill` SIGKILLs the process (its whole process group: invoice-poster's relay too)
after about a third of the postings and starts it again; `db` ends every PostgreSQL session
of the run's database three times (past a quarter, half and three quarters of the way, each
after a random wait of up to a second: the bench sees progress just after a commit, when a
batch's connection is idle, and ending it then would spare the posters that commit in
batches). A process that exits by itself is started again, as a supervisor would, and
counted.
"""

from __future__ import annotations

import contextlib
import enum
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
from confluent_kafka import TopicPartition

from finsync.bench.invoice_poster import Offsets, point_group, reset_database
from finsync.bench.peers.posting import datadir
from finsync.bench.peers.topics import OUT_TOPIC, forget_group
from finsync.contract.events import InvoiceIssued, InvoicePosted
from finsync.runtime import clients
from finsync.settings import Settings

POLL = 0.25  # seconds; polling more often takes CPU from the process measured
IDLE = 10.0  # nothing moved this long: the run is over ...
# ... but not this soon after a (re)start: a member killed without leaving holds its
# partitions for its session timeout (faust's: 60 s), and a result the killed process had
# in flight can still land meanwhile.
GRACE = 90.0
GROUP_WAIT_SECONDS = GRACE  # a killed member holds its group about as long
SETTLE = 3.0  # after a fault, all posted: how long no result may arrive before it is over
# The run's own sessions: not the server's background workers (autovacuum) in the database.
DROP_SESSIONS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend' AND usename = current_user"
)


class Fault(enum.Enum):
    NONE = "none"
    KILL = "kill -9 at 1/3, restarted"
    DB = "PostgreSQL sessions dropped 3x"


@dataclass(frozen=True)
class Runner:
    name: str
    module: str = ""  # a peer's module under finsync.bench.peers; "" for invoice-poster
    mode: str = ""

    def fresh_group(self) -> str:
        """A new group per run for a peer; invoice-poster runs in its own."""
        if not self.module:
            return "invoice-poster"  # the service's own group, as `make bench` moves it
        return f"bench-peer-{self.module.split('_')[0]}-{self.mode}-{uuid.uuid4().hex[:8]}"

    @property
    def topic_out(self) -> str:
        return OUT_TOPIC if self.module else InvoicePosted.TOPIC

    def command(self, group: str) -> list[str]:
        if not self.module:
            return [sys.executable, "-m", "finsync.cli.main", "run", "invoice-poster"]
        return [
            *(sys.executable, "-m", f"finsync.bench.peers.{self.module}"),
            *("--mode", self.mode, "--group", group, "--topic-out", self.topic_out),
        ]


PEERS = (
    Runner("FastStream, per message", "faststream_poster", "single"),
    Runner("FastStream, batch subscriber (500)", "faststream_poster", "batch"),
    Runner("faust, per-message agent", "faust_poster", "single"),
    Runner("faust, stream.take(500, within=1)", "faust_poster", "take"),
)
FINSYNC = Runner("finsync invoice-poster")


@dataclass(frozen=True)
class Observed:
    seconds: float | None  # first posting to the last one announced; None: it never got there
    since: dict[int, int]  # where the run's results start on its result topic
    restarts: int  # after the fault's kill
    exits: int  # the process ended by itself and was started again
    drops: int  # sessions ended by the fault


class Process:
    """The runner's process, in a process group of its own so a kill takes its children."""

    def __init__(self, command: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        self.command, self.env, self.log = command, env, log
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def restart(self) -> None:
        self.stop(signal.SIGKILL)
        self.proc = self._start()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):  # gone already, its group too
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        # Children of a killed leader may outlive it for a moment: none may be left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def drive(
    settings: Settings, runner: Runner, offsets: Offsets, fault: Fault, log_dir: Path
) -> Observed:
    """`settings` name the run's database, which is reset first."""
    n = sum(end - first for first, end in offsets.values())
    reset_database(settings)
    group, topic = runner.fresh_group(), runner.topic_out
    probe = clients.consumer(settings, f"bench-peers-probe-{uuid.uuid4()}")
    parts = probe.list_topics(topic, timeout=10).topics[topic].partitions

    def outputs() -> dict[int, int]:
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p))[1] for p in parts}

    since = outputs()
    point_group(settings, group, InvoiceIssued.TOPIC, offsets, GROUP_WAIT_SECONDS)
    env = {
        **os.environ,
        "FINSYNC_DATABASE_URL": settings.database_url,
        "FINSYNC_METRICS_PORT_INVOICE_POSTER": "0",  # no port to clash with another instance
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = runner.module or "finsync"
    drops_at = [n // 4, n // 2, 3 * n // 4] if fault is Fault.DB else []
    drop_due: float | None = None
    wait = random.Random(n)
    kill_at = n // 3 if fault is Fault.KILL else None
    restarts = exits = drops = 0
    started = finished = None
    with (
        open(log_dir / f"{slug}-{runner.mode or 'service'}.log", "ab") as log,
        psycopg.connect(settings.database_url, autocommit=True) as conn,
    ):
        proc = Process(runner.command(group), env, log)

        def note(what: str) -> None:  # the bench's own lines in the process's log
            log.write(f"--- bench {time.strftime('%H:%M:%S')}: {what}\n".encode())
            log.flush()

        note(f"{runner.name}, fault {fault.value}, {n} events, group {group}")
        try:
            last, moved = (-1, -1), time.monotonic()
            began = moved
            while True:
                due = POLL if drop_due is None else drop_due - time.monotonic()
                time.sleep(max(0.0, min(POLL, due)))
                row = conn.execute("SELECT count(*) FROM erp.journal_entries").fetchone()
                posted = int(row[0]) if row else 0
                sent = sum(outputs().values()) - sum(since.values())
                now = time.monotonic()
                if posted and started is None:
                    # When the first posting's transaction began, by the database's clock
                    # (this machine's): finer than the polling.
                    row = conn.execute(
                        "SELECT extract(epoch FROM min(posted_at))::float8 FROM erp.journal_entries"
                    ).fetchone()
                    started = now - (time.time() - float(row[0])) if row else now
                if (posted, sent) != last:
                    last, moved = (posted, sent), now
                if posted >= n and sent >= n:
                    finished = finished or now
                    # Results of redelivered records may still be on their way.
                    if fault is Fault.NONE or now - moved > SETTLE:
                        note(f"done: {posted} posted, {sent} results")
                        break
                    continue
                if now - moved > IDLE and now - began > GRACE:
                    note(f"nothing moved for {now - moved:.0f} s: {posted} posted, {sent} results")
                    break  # what is missing now is lost
                if kill_at is not None and posted >= kill_at:
                    note(f"SIGKILL at {posted} posted, {sent} results; starting again")
                    proc.restart()
                    kill_at, restarts, began = None, restarts + 1, now
                elif drops_at and posted >= drops_at[0] and drop_due is None:
                    drop_due = now + wait.uniform(0, 1)
                elif drop_due is not None and now >= drop_due:
                    drops_at.pop(0)
                    row = conn.execute(DROP_SESSIONS).fetchone()
                    note(f"ended {row[0] if row else 0} sessions past {posted} posted")
                    drops, drop_due = drops + 1, None
                if proc.proc.poll() is not None:
                    note(f"exited with {proc.proc.returncode}; starting again")
                    proc.restart()
                    exits, began = exits + 1, now
        finally:
            proc.stop()
            probe.close()
            if runner.module:
                forget_group(settings, group)
                shutil.rmtree(datadir(settings, group), ignore_errors=True)  # a killed faust's
    seconds = finished - started if finished is not None and started is not None else None
    return Observed(seconds, since, restarts, exits, drops)
