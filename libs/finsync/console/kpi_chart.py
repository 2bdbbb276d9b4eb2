"""The KPI page's charts, laid out here and drawn by the template as inline SVG (no chart
library, no script): grouped bars (money flows per day or week) and stacked bars (the
receivable by aging bucket).

Amounts stay Decimal throughout; only a ratio of two amounts becomes a float, as a pixel
coordinate. Values may be negative (a day of more credit memos than invoices): bars grow down
from the zero line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from finsync.domain.accounting import MINOR_UNITS

WIDTH = 1200.0  # about its width on a screen, so its labels stay small
HEIGHT = 240.0
LEFT = 56.0  # room for the y axis labels
RIGHT = 20.0  # room for half the last x axis label
TOP = 24.0  # room for the unit above the y axis
BOTTOM = 18.0  # room for the x axis labels
MAX_LABELS = 12  # x axis labels at most, so they never overlap
MIN_HEIGHT = 1.0  # a bar of a tiny but non-zero amount stays visible
ZERO = Decimal(0)
ONE = Decimal(1)

Series = tuple[str, str]  # name, colour class


def money(amount: Decimal, currency: str) -> str:
    """An amount as a person reads it: thousands separators, and the currency's minor units
    when that loses nothing (the events carry Avro's fixed scale, 1931.5000)."""
    minor = MINOR_UNITS.get(currency)
    if minor is not None:
        try:
            exact = amount.quantize(ONE.scaleb(-minor))
        except InvalidOperation:  # more digits than the context holds: shown as it is
            exact = amount
        if exact == amount:
            amount = exact
    return f"{amount:,}"


def compact(value: Decimal) -> str:
    """An axis label: 250k, 1.5M, 2B, 0.5."""
    if value == 0:
        return "0"
    for size, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k")):
        if abs(value) >= size:
            return f"{(value / size).normalize():f}{suffix}"
    return f"{value.normalize():f}"


def _step(raw: Decimal) -> Decimal:
    """The round step (1, 2, 2.5 or 5 times a power of ten) at or above `raw` (> 0)."""
    base = ONE.scaleb(raw.adjusted())
    for factor in (ONE, Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if base * factor >= raw:
            return base * factor
    raise AssertionError("unreachable: 10 * base > raw")


@dataclass(frozen=True)
class Scale:
    """The y axis: from `low` (<= 0) to `high` (>= 0) in round steps."""

    low: Decimal
    high: Decimal
    step: Decimal

    def y(self, value: Decimal) -> float:
        ratio = (self.high - value) / (self.high - self.low)  # Decimal; only the ratio floats
        return TOP + (HEIGHT - TOP - BOTTOM) * float(ratio)

    def ticks(self) -> list[Decimal]:
        count = int((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


def scale(low: Decimal, high: Decimal, steps: int = 4) -> Scale:
    """A round axis holding 0, `low` and `high`, in about `steps` steps."""
    low, high = min(low, ZERO), max(high, ZERO)
    step = _step((high - low) / steps if high > low else ONE / steps)
    top = (high / step).to_integral_value(ROUND_CEILING) * step
    bottom = (low / step).to_integral_value(ROUND_FLOOR) * step
    if top == bottom:
        top = bottom + step
    return Scale(bottom + 0, top + 0, step)  # + 0: no "-0" on the axis


@dataclass(frozen=True)
class Column:
    """One place on the x axis: its label (blank: not labelled), the start of its bars' hover
    titles, and one value per series."""

    label: str
    title: str
    values: tuple[Decimal, ...]


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # shown on hover


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class XLabel:
    x: float
    text: str


@dataclass(frozen=True)
class LegendItem:
    colour: str
    name: str
    value: str  # the period's total, or the latest value


@dataclass(frozen=True)
class Plot:
    rects: tuple[Rect, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[XLabel, ...]
    legend: tuple[LegendItem, ...]
    zero: float  # y of the zero line
    unit: str  # the y axis unit (the currency)
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT

    @property
    def empty(self) -> bool:
        return not self.rects


def _slot(columns: int) -> float:
    return (WIDTH - RIGHT - LEFT) / max(columns, 1)


def _axes(columns: Sequence[Column], sc: Scale) -> tuple[tuple[Tick, ...], tuple[XLabel, ...]]:
    ticks = tuple(Tick(sc.y(v), compact(v)) for v in sc.ticks())
    every = -(-len(columns) // MAX_LABELS)  # ceiling division
    slot = _slot(len(columns))
    last = len(columns) - 1
    labels = tuple(  # centred under their column, counted back from the latest, always shown
        XLabel(LEFT + (i + 0.5) * slot, c.label)
        for i, c in enumerate(columns)
        if c.label and (last - i) % every == 0
    )
    return ticks, labels


def _rect(
    sc: Scale, x: float, width: float, base: Decimal, value: Decimal, colour: str, title: str
) -> Rect:
    """The bar from `base` to `base + value`, at least MIN_HEIGHT tall."""
    top, bottom = sc.y(max(base, base + value)), sc.y(min(base, base + value))
    height = max(bottom - top, MIN_HEIGHT)
    return Rect(x, bottom - height if value > 0 else top, width, height, colour, title)


def grouped(columns: Sequence[Column], series: Sequence[Series], currency: str) -> Plot:
    """Side by side in each column, one bar per series; the legend holds each series' total."""
    values = [v for c in columns for v in c.values]
    sc = scale(min(values, default=ZERO), max(values, default=ZERO))
    slot = _slot(len(columns))
    width = slot * 0.8 / max(len(series), 1)
    rects = []
    for i, c in enumerate(columns):
        for j, ((name, colour), value) in enumerate(zip(series, c.values, strict=True)):
            if value:
                x = LEFT + i * slot + slot * 0.1 + j * width
                title = f"{c.title}: {name} {money(value, currency)} {currency}"
                rects.append(_rect(sc, x, max(width - 0.5, 0.5), ZERO, value, colour, title))
    totals = [sum((c.values[j] for c in columns), ZERO) for j in range(len(series))]
    legend = tuple(
        LegendItem(colour, name, money(total, currency))
        for (name, colour), total in zip(series, totals, strict=True)
    )
    ticks, labels = _axes(columns, sc)
    return Plot(tuple(rects), ticks, labels, legend, sc.y(ZERO), currency)


def stacked(columns: Sequence[Column], series: Sequence[Series], currency: str) -> Plot:
    """One bar per column, its series stacked (positive amounts up from zero, negative ones
    down); the legend holds the last column's values."""
    ups = [sum((v for v in c.values if v > 0), ZERO) for c in columns]
    downs = [sum((v for v in c.values if v < 0), ZERO) for c in columns]
    sc = scale(min(downs, default=ZERO), max(ups, default=ZERO))
    slot = _slot(len(columns))
    rects = []
    for i, c in enumerate(columns):
        x, width = LEFT + i * slot + slot * 0.1, max(slot * 0.8, 0.5)
        up = down = ZERO
        for (name, colour), value in zip(series, c.values, strict=True):
            if not value:
                continue
            title = f"{c.title}: {name} {money(value, currency)} {currency}"
            base = up if value > 0 else down
            rects.append(_rect(sc, x, width, base, value, colour, title))
            if value > 0:
                up += value
            else:
                down += value
    last = columns[-1].values if columns else tuple(ZERO for _ in series)
    legend = tuple(
        LegendItem(colour, name, money(value, currency))
        for (name, colour), value in zip(series, last, strict=True)
    )
    ticks, labels = _axes(columns, sc)
    return Plot(tuple(rects), ticks, labels, legend, sc.y(ZERO), currency)
