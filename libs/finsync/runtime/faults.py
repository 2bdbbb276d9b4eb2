"""Named fault points for the crash tests: FINSYNC_FAULT_PAUSE=<point> holds the process there.

A test waits for the log line, then SIGKILLs the process inside the window it wants to prove
safe (e.g. after the database commit, before the offset commit). Unset, it costs one lookup.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("finsync.faults")

BEFORE_OFFSET_COMMIT = "before-offset-commit"
BEFORE_MARK_SENT = "before-mark-sent"

_ACTIVE = os.environ.get("FINSYNC_FAULT_PAUSE")


def pause_at(point: str) -> None:
    if point == _ACTIVE:
        log.warning("fault point %s reached; holding here until killed", point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        while True:
            time.sleep(3600)
