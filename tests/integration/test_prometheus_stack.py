"""`finsync stack up --prometheus` starts Debian's Prometheus, which scrapes the services."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from finsync.settings import Settings
from finsync.stack import prometheus
from tests.support import ServiceProcess, eventually

pytestmark = pytest.mark.integration

SERVICE = "payment-settler"


def _targets(settings: Settings) -> list[dict[str, Any]]:
    api = f"http://127.0.0.1:{settings.prometheus_port}/api/v1/targets"
    with urllib.request.urlopen(api, timeout=5) as response:
        targets: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
    return targets


def test_stack_up_with_prometheus_scrapes_a_running_service(
    settings: Settings, tmp_path: Path
) -> None:
    was_running = prometheus.running(settings)
    try:
        up = subprocess.run(
            [sys.executable, "-m", "finsync.cli.main", "stack", "up", "--prometheus"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert any(line.startswith("prometheus") and " up " in line
                   for line in up.stdout.splitlines()), up.stdout  # fmt: skip
        service = ServiceProcess(SERVICE, tmp_path).start()
        try:

            def scraped() -> list[dict[str, Any]]:
                return [
                    t
                    for t in _targets(settings)
                    if t["labels"].get("job") == SERVICE
                    and t["labels"].get("process") == "consumer"
                    and t["health"] == "up"
                ]

            [target] = eventually(scraped, 30, f"Prometheus to scrape {SERVICE}")
            assert (
                target["scrapeUrl"] == f"http://127.0.0.1:{settings.metrics_port(SERVICE)}/metrics"
            )
        finally:
            service.stop()
    finally:
        if not was_running:  # leave the stack as it was found
            prometheus.stop(settings)
