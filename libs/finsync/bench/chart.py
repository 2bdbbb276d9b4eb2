"""`make bench`'s chart, drawn from bench-results.json: throughput bars (each section's runs,
baselines and peers side by side), end-to-end latency percentiles per publishing rate, and
the fault runs' lost and duplicated effects.

    python -m finsync.bench.chart   # after the benches; FINSYNC_BENCH_OUT as they used
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here

import matplotlib.pyplot as plt

from finsync.bench import results

RATE_KEYS = ("events_per_second", "records_per_second")
PERCENTILES = ("p50_ms", "p90_ms", "p99_ms")


def throughput_bars(figures: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, per second) of every run of every section that measured a rate, in order."""
    bars = []
    for section, data in figures.items():
        for run in data.get("throughput", []) if isinstance(data, dict) else []:
            rate = next((run[k] for k in RATE_KEYS if run.get(k) is not None), None)
            if rate is not None:
                bars.append((f"{section}: {run['run']}", float(rate)))
    return bars


def latency_groups(figures: dict[str, Any]) -> list[tuple[str, list[float]]]:
    """(label, [p50, p90, p99]) per publishing rate and section."""
    groups = []
    for section, data in figures.items():
        for at in data.get("latency", []) if isinstance(data, dict) else []:
            label = f"{section} at {at['rate']}/s"
            groups.append((label, [float(at[p]) for p in PERCENTILES]))
    return groups


def fault_groups(figures: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(label, lost, duplicated) of every fault run."""
    return [
        (f"{run['run']}: {run['fault']}", int(run["lost"]), int(run["duplicated"]))
        for data in figures.values()
        if isinstance(data, dict)
        for run in data.get("faults", [])
    ]


def service_groups(figures: dict[str, Any]) -> list[tuple[str, list[float]]]:
    """(service, [events/s, its ceiling's]) of the services bench; none if it has not run."""
    data = figures.get("services")
    runs = data.get("runs", []) if isinstance(data, dict) else []
    return [
        (run["service"], [float(run["events_per_second"]), float(run["ceiling_events_per_second"])])
        for run in runs
    ]


def draw(figures: dict[str, Any], path: Path) -> Path:
    bars, latency, faults = throughput_bars(figures), latency_groups(figures), fault_groups(figures)
    services = service_groups(figures)
    panels = [p for p in (bars, services, latency, faults) if p]
    if not panels:
        raise ValueError("no figures to chart: run the benches first")
    height = sum(0.9 + 0.35 * len(p) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, max(4.0, height)), squeeze=False)
    column = iter(axes[:, 0])
    if bars:
        ax = next(column)
        labels, rates = zip(*bars, strict=True)
        ax.barh(labels, rates, color="#3a6ea5")
        ax.invert_yaxis()
        ax.set_title("Throughput (per second)")
        for y, rate in enumerate(rates):
            ax.text(rate, y, f" {rate:,.0f}", va="center", fontsize=8)
    if services:
        ax = next(column)
        _grouped(ax, services, ["service", "ceiling: consume + decode"], ["#3a6ea5", "#9cc3e6"])
        ax.set_xscale("log")  # a service runs at a tenth of its ceiling or less
        ax.set_xlim(10, 30 * max(max(rates) for _, rates in services))  # room for the legend
        ax.set_title("Services beside their ceiling (events/s, log scale)")
    if latency:
        ax = next(column)
        names = [p.removesuffix("_ms") for p in PERCENTILES]
        _grouped(ax, latency, names, ["#9cc3e6", "#3a6ea5", "#1b365d"])
        ax.set_xscale("log")
        ax.set_xlim(left=1)  # bars from 1 ms, so their lengths compare
        ax.set_title("End-to-end latency, publish to result (ms, log scale)")
    if faults:
        ax = next(column)
        rows = [(label, [float(lost), float(dup)]) for label, lost, dup in faults]
        _grouped(ax, rows, ["lost", "duplicated"], ["#c0392b", "#e67e22"])
        ax.set_title("Fault runs: effects lost and duplicated (0 is the only pass)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _grouped(
    ax: Any, rows: list[tuple[str, list[float]]], series: list[str], colours: list[str]
) -> None:
    width = 0.8 / len(series)
    for k, (name, colour) in enumerate(zip(series, colours, strict=True)):
        ys = [y + k * width for y in range(len(rows))]
        values = [values[k] for _, values in rows]
        ax.barh(ys, values, height=width, label=name, color=colour)
        for y, value in zip(ys, values, strict=True):
            ax.text(value, y, f" {value:,.0f}", va="center", fontsize=7)
    ax.set_yticks([y + width * (len(series) - 1) / 2 for y in range(len(rows))])
    ax.set_yticklabels([label for label, _ in rows])
    ax.invert_yaxis()
    ax.legend(fontsize=8)


def main() -> int:
    where = results.out_dir()
    figures = results.load(where)
    try:
        path = draw(figures, where / results.CHART)
    except ValueError as exc:
        print(f"finsync bench chart: {exc}", file=sys.stderr)
        return 1
    print(f"figures: {where / results.RESULTS}\nchart:   {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
