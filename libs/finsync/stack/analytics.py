"""finance-analytics as a background process for `make demo` (stack/background.py): left
running after the demo so the console's KPI page and `finsync kpis` keep answering, stopped by
`finsync stack down`. A deployment runs `finsync run finance-analytics` under its supervisor."""

from __future__ import annotations

from pathlib import Path

from finsync.settings import Settings
from finsync.stack.background import Background, stop_pidfile


def _process(settings: Settings) -> Background:
    return Background(
        ("run", "finance-analytics"),
        settings.home / "run" / f"finance-analytics-{settings.analytics_port}.pid",
        f"{settings.analytics_url}/kpis?days=1",
        settings.analytics_group,
        "FINSYNC_ANALYTICS_PORT",
    )


def ensure_running(settings: Settings, log: Path, timeout: float = 90) -> str:
    """Where it serves its figures, starting it unless ours already answers there."""
    _process(settings).ensure_running(log, timeout)
    return settings.analytics_url


def stop_port(settings: Settings) -> None:
    """Stop the finance-analytics this home started on the settings' port."""
    _process(settings).stop()


def stop(settings: Settings) -> None:
    """Stop every finance-analytics this home started, on any port."""
    for pidfile in (settings.home / "run").glob("finance-analytics-*.pid"):
        stop_pidfile(pidfile)
