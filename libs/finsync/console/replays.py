"""Real replays started from the console run in the background: at the chosen rate, a replay of
thousands of letters takes minutes, longer than a request should. Its page shows how far it
got; the audit trail has every letter's outcome either way."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from finsync.ops import replay as replays
from finsync.ops.dead_letters import Query
from finsync.settings import Settings

log = logging.getLogger("finsync.console")
KEPT = 50  # finished jobs remembered per console process
RUNNING = 2  # replays one console runs at once: each holds a connection and a producer


class Busy(Exception):
    """Too many replays under way; the message says so."""


@dataclass
class Job:
    id: str
    actor: str
    reason: str
    planned: int  # letters the dry run selected
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    done: int = 0
    result: replays.Replay | None = None
    error: str | None = None
    finished_at: datetime | None = None
    cancelled_by: str | None = None  # set by an operator; the replay stops before its next chunk

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def outcomes(self) -> dict[str, int]:
        """How many letters ended how: replayed, refused, failed."""
        counts: dict[str, int] = {}
        for r in self.result.results if self.result else []:
            kind = r.outcome.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


class Jobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(
        self,
        settings: Settings,
        *,
        actor: str,
        reason: str,
        planned: int,
        ids: Sequence[int] | None,
        query: Query | None,
        rate: float,
        force: bool,
    ) -> Job:
        job = Job(str(uuid.uuid4()), actor, reason, planned)
        with self._lock:
            if sum(not j.finished for j in self._jobs.values()) >= RUNNING:
                raise Busy(
                    f"{RUNNING} replays are under way already; wait for one to finish "
                    "(or cancel one) and try again."
                )
            self._jobs[job.id] = job
            while len(self._jobs) > KEPT:
                oldest = next(iter(self._jobs.values()))
                if not oldest.finished:
                    break
                self._jobs.popitem(last=False)

        def run() -> None:
            def progress(done: int) -> None:
                job.done = done

            try:
                job.result = replays.replay(
                    settings,
                    reason=reason,
                    actor=actor,
                    ids=ids,
                    query=query,
                    rate_per_second=rate,
                    force=force,
                    limit=max(planned, 1),
                    progress=progress,
                    cancelled=lambda: job.cancelled_by is not None,
                    replay_id=job.id,
                )
            except Exception as exc:  # shown on the job's page; the audit has what was sent
                # The class and the job only: a message may quote a letter's data.
                log.error("replay failed", extra={"error": type(exc).__name__, "job": job.id})
                job.error = f"the replay stopped: {type(exc).__name__}; the audit shows how far"
            job.finished_at = datetime.now(UTC)

        threading.Thread(target=run, name=f"replay-{job.id}", daemon=True).start()
        return job
