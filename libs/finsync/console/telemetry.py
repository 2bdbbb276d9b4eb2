"""The console's own metrics, on /metrics for Prometheus beside the process's defaults."""

from __future__ import annotations

from prometheus_client import Histogram

# Made once per process: prometheus_client refuses a second metric of the same name.
REQUESTS = Histogram(
    "finsync_console_request_duration_seconds",
    "console requests, by method, route pattern and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
