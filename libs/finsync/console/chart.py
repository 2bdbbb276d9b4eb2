"""Dead letters by error class over time as a stacked bar chart, laid out here and drawn by the
template as inline SVG (no chart library, no script)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH = 1200.0  # about its width on a screen, so its labels stay small
HEIGHT = 180.0
LEFT = 34.0  # room for the y axis labels
BOTTOM = 18.0  # room for the x axis labels
COLOURS = 6  # classes drawn in their own colour; the rest are "other"


@dataclass(frozen=True)
class Segment:
    colour: int  # 1..COLOURS, COLOURS for "other"
    y: float
    height: float
    title: str  # shown on hover


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    label: str  # the x axis label, on every few bars
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    legend: tuple[tuple[int, str, int], ...]  # colour, error class, total
    top: int  # the y axis maximum
    total: int
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    bottom: float = BOTTOM

    @property
    def plot_height(self) -> float:
        return self.height - self.bottom


def layout(
    rows: Sequence[tuple[datetime, str, str, int]],
    start: datetime,
    buckets: int,
    step: timedelta = timedelta(hours=1),
) -> Chart:
    """`rows` are (bucket start, service, error class, count); one bar per bucket from `start`,
    stacked by error class (services summed), the most frequent classes in their own colour."""
    by_class: Counter[str] = Counter()
    per_bucket: dict[int, Counter[str]] = defaultdict(Counter)
    for bucket, _service, error_class, count in rows:
        index = int((bucket - start) / step)
        if 0 <= index < buckets:
            per_bucket[index][error_class] += count
            by_class[error_class] += count
    ranked = [name for name, _ in by_class.most_common()]
    named = ranked[: COLOURS - 1] if len(ranked) > COLOURS else ranked
    colour = {name: i + 1 for i, name in enumerate(named)}
    legend = [(colour[n], n, by_class[n]) for n in named]
    others = sum(by_class[n] for n in ranked if n not in colour)
    if others:
        legend.append((COLOURS, "other", others))
    totals = [sum(per_bucket[i].values()) for i in range(buckets)]
    top = _nice(max(totals, default=0))
    plot = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT) / max(buckets, 1)
    every = max(buckets // 6, 1)
    bars = []
    for i in range(buckets):
        y = plot
        segments = []
        stacked: Counter[str] = Counter()
        for name, count in per_bucket[i].items():
            stacked[name if name in colour else "other"] += count
        for name, count in sorted(stacked.items(), key=lambda kv: colour.get(kv[0], COLOURS)):
            h = plot * count / top
            y -= h
            when = (start + i * step).strftime("%d %b %H:%M")
            segments.append(Segment(colour.get(name, COLOURS), y, h, f"{when}: {count} {name}"))
        label = (start + i * step).strftime("%H:%M") if i % every == 0 else ""
        bars.append(Bar(LEFT + i * slot + 1, max(slot - 2, 1), label, totals[i], tuple(segments)))
    return Chart(tuple(bars), tuple(legend), top, sum(totals))


def _nice(value: int) -> int:
    """A round axis maximum at or above `value`: 1, 2, 5, 10, 20, 50, ..."""
    top = 1
    while True:
        for factor in (1, 2, 5):
            if top * factor >= value:
                return top * factor
        top *= 10
