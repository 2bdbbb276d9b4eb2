"""`finsync run finance-analytics`: the app in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import logging

import faust

from finsync.runtime import telemetry
from finsync.settings import Settings

from .app import Analytics
from .reader import Streams


def run(settings: Settings) -> None:
    analytics = Analytics(settings, Streams(group=settings.analytics_group))
    telemetry.json_logs(settings.log_level)
    if settings.log_level.upper() != "DEBUG":  # faust logs every start and stop step at INFO
        for name in ("faust", "mode", "aiokafka"):
            logging.getLogger(name).setLevel(logging.WARNING)
    worker = faust.Worker(
        analytics.app,
        loglevel=settings.log_level,
        quiet=True,  # no banner: the log is JSON lines, like every service's
        redirect_stdouts=False,
        override_logging=False,  # keep finsync's JSON logging
    )
    worker.spinner = None  # its terminal codes are no log line
    worker.execute_from_commandline()
