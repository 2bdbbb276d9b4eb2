"""The console's KPI page, its pure parts: the charts' layout (round axes, grouped and stacked
bars, negative amounts), money as people read it, days into bars, which book is shown, and the
page in each state of finance-analytics (not answering, starting, counting)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from finsync.console import kpi_chart, web
from finsync.console.kpi_chart import Column, compact, grouped, money, scale, stacked
from finsync.console.pages import kpis
from finsync.ops.kpis import AGING, KpiRow, parse

D = Decimal
LAST = date(2026, 3, 31)
SERIES = (("a", "c1"), ("b", "c2"))
PLOT_TOP, PLOT_BOTTOM = kpi_chart.TOP, kpi_chart.HEIGHT - kpi_chart.BOTTOM


def row(day: date, **amounts: str) -> dict[str, Any]:
    values = {
        "bookings": "0",
        "billings": "0",
        "credits": "0",
        "net_billings": "0",
        "collections": "0",
        "open_ar": "0",
        "unapplied_cash": "0",
    }
    values.update(amounts)
    aging = amounts.get("aging", "0 0 0 0 0").split()
    return {
        **values,
        "legal_entity": amounts.get("entity", "ACME-DE"),
        "currency": amounts.get("currency", "EUR"),
        "day": day.isoformat(),
        "aging": aging,
        "dso": amounts.get("dso"),
    }


def answer(*rows: dict[str, Any], letters: list[dict[str, Any]] | None = None) -> Any:
    text = json.dumps(
        {
            "ready": True,
            "events_counted": 3,
            "aging_buckets": ["current", "1-30", "31-60", "61-90", "90+"],
            "figures": list(rows),
            "dead_letters": letters or [],
        }
    )
    return json.loads(text)


@pytest.mark.parametrize(
    ("low", "high", "bottom", "top", "step"),
    [
        ("0", "1190", "0", "1500", "500"),
        ("0", "0.4", "0", "0.4", "0.1"),
        ("-300", "900", "-500", "1000", "500"),
        ("0", "0", "0", "0.25", "0.25"),
        ("0", "2000000", "0", "2000000", "500000"),
    ],
)
def test_the_axis_is_round_and_holds_zero_and_every_value(
    low: str, high: str, bottom: str, top: str, step: str
) -> None:
    sc = scale(D(low), D(high))
    assert (sc.low, sc.high, sc.step) == (D(bottom), D(top), D(step))
    assert sc.y(sc.high) == pytest.approx(PLOT_TOP) and sc.y(sc.low) == pytest.approx(PLOT_BOTTOM)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("1234567.5000", "EUR", "1,234,567.50"),
        ("0", "EUR", "0.00"),
        ("-1190.0000", "USD", "-1,190.00"),
        ("1000.0000", "JPY", "1,000"),
        ("0.125", "EUR", "0.125"),  # never rounded away
        ("1234.5", "XXX", "1,234.5"),
    ],
)
def test_money_has_thousands_separators_and_loses_nothing(
    amount: str, currency: str, shown: str
) -> None:
    assert money(D(amount), currency) == shown


def test_axis_labels_are_compact() -> None:
    assert [compact(D(v)) for v in ("0", "500", "2500", "1500000", "-250000", "0.25")] == [
        "0",
        "500",
        "2.5k",
        "1.5M",
        "-250k",
        "0.25",
    ]


def test_grouped_bars_stand_side_by_side_at_heights_in_proportion() -> None:
    columns = [Column("01 Mar", "2026-03-01", (D("1000"), D("250"))), Column("", "x", (D(0), D(0)))]
    p = grouped(columns, SERIES, "EUR")
    a, b = p.rects
    assert a.x < b.x and a.x + a.width <= b.x
    assert a.y + a.height == pytest.approx(p.zero) == pytest.approx(PLOT_BOTTOM)
    assert a.height == pytest.approx(4 * b.height)  # 1000 against 250
    assert a.height == pytest.approx(PLOT_BOTTOM - PLOT_TOP)  # the axis tops at 1000
    assert b.title == "2026-03-01: b 250.00 EUR"
    assert [(i.name, i.value) for i in p.legend] == [("a", "1,000.00"), ("b", "250.00")]
    assert [label.text for label in p.labels] == ["01 Mar"]
    assert [t.label for t in p.ticks] == ["0", "250", "500", "750", "1k"]


def test_a_negative_amount_hangs_below_the_zero_line() -> None:
    p = grouped([Column("d", "d", (D("-100"), D("300")))], SERIES, "EUR")
    down, up = p.rects
    assert down.y == pytest.approx(p.zero) and down.height > 0
    assert up.y + up.height == pytest.approx(p.zero)
    assert p.zero < PLOT_BOTTOM  # room below zero
    assert down.height == pytest.approx(up.height / 3)


def test_stacked_bars_pile_up_from_zero_and_the_legend_is_the_latest_column() -> None:
    columns = [
        Column("1", "one", (D("100"), D("0"))),
        Column("2", "two", (D("400"), D("200"))),
    ]
    p = stacked(columns, SERIES, "EUR")
    first, lower, upper = p.rects
    assert first.y + first.height == pytest.approx(p.zero)
    assert lower.y + lower.height == pytest.approx(p.zero)
    assert upper.y + upper.height == pytest.approx(lower.y)  # on top of the first series
    assert upper.y == pytest.approx(PLOT_TOP)  # 600 is the axis' top
    assert first.height == pytest.approx(lower.height / 4)
    assert [i.value for i in p.legend] == ["400.00", "200.00"]
    assert stacked([Column("1", "x", (D(0), D(0)))], SERIES, "EUR").empty


def test_a_tiny_amount_is_still_a_visible_bar() -> None:
    p = grouped([Column("d", "d", (D("1000000"), D("0.01")))], SERIES, "EUR")
    assert p.rects[1].height == kpi_chart.MIN_HEIGHT
    assert p.rects[1].y + p.rects[1].height == pytest.approx(p.zero)


def figures(day: date, **amounts: str) -> KpiRow:
    [parsed] = parse(answer(row(day, **amounts))).rows
    return parsed


def test_a_short_period_is_a_bar_a_day_and_a_year_a_bar_a_week() -> None:
    rows = [figures(LAST - timedelta(days=d), bookings="10") for d in range(10)]
    daily = kpis.buckets(rows, LAST, 30)
    assert len(daily) == 30 and daily[-1].first == daily[-1].last == LAST
    assert sum(len(b.rows) for b in daily) == 10
    weekly = kpis.buckets(rows, LAST, 365)
    assert len(weekly) == 53 and weekly[-1].last == LAST
    assert weekly[-1].first == LAST - timedelta(days=6)
    assert weekly[0].first <= LAST - timedelta(days=364)
    plot = kpis.flow_chart(weekly, "EUR")
    assert [i.value for i in plot.legend] == ["100.00", "0.00", "0.00"]
    assert len(plot.rects) == 2  # ten days fall in two weeks


def test_aging_bars_are_the_balance_at_each_bars_last_day() -> None:
    rows = [
        figures(LAST - timedelta(days=1), open_ar="100", aging="100 0 0 0 0"),
        figures(LAST, open_ar="70", aging="20 50 0 0 0"),
    ]
    plot = kpis.aging_chart(kpis.buckets(rows, LAST, 365), AGING, "EUR")
    assert [r.title for r in plot.rects] == [
        f"as of {LAST}: current 20.00 EUR",
        f"as of {LAST}: 1-30 50.00 EUR",
    ]


def test_the_book_asked_for_else_the_entitys_first_currency_else_the_first_book() -> None:
    books = [("ACME-DE", "EUR"), ("ACME-US", "EUR"), ("ACME-US", "USD")]
    assert kpis.choose(books, "", "") == kpis.Choice(("ACME-DE", "EUR"), "")
    assert kpis.choose(books, "ACME-US", "USD").book == ("ACME-US", "USD")
    other = kpis.choose(books, "ACME-US", "GBP")
    assert other.book == ("ACME-US", "EUR") and "no figures in GBP" in other.note
    gone = kpis.choose(books, "ACME-FR", "EUR")
    assert gone.book == ("ACME-DE", "EUR") and "ACME-FR" in gone.note
    assert kpis.choose([], "ACME-DE", "EUR").book is None


def test_the_page_shows_the_latest_day_and_the_periods_dead_letters() -> None:
    before = (LAST - timedelta(days=31)).isoformat()
    k = parse(
        answer(
            row(LAST - timedelta(days=40), bookings="5000"),
            row(LAST, billings="1500", net_billings="1500", collections="190.0000",
                open_ar="1500.0000", aging="500 1000 0 0 0", unapplied_cash="50", dso="30.0"),
            letters=[
                {"day": LAST.isoformat(), "service": "invoice-poster", "count": 2},
                {"day": before, "service": "account-sync", "count": 9},
            ],
        )
    )  # fmt: skip
    v = kpis.view(k, "ACME-DE", "EUR", 30)
    lines = {line.testid: line for line in v.latest_lines}
    assert lines["kpi-open-ar"].value == "1,500.00"
    assert (lines["kpi-aging-1"].value, lines["kpi-aging-1"].share) == ("1,000.00", "67 %")
    assert lines["kpi-unapplied-cash"].value == "50.00"
    assert lines["kpi-dso"].value == "30.0 days"
    totals = {line.testid: line.value for line in v.period_lines}
    assert totals["kpi-bookings"] == "0.00"  # the deal closed before these 30 days
    assert totals["kpi-collections"] == "190.00"
    assert v.letters == [("invoice-poster", 2)]
    assert v.per == "day" and v.first == LAST - timedelta(days=29)
    assert v.flows is not None and len(v.flows.rects) == 2


def render(**context: Any) -> str:
    session = SimpleNamespace(csrf="token", username="ops", role="viewer")
    base = {"days": 90, "periods": kpis.PERIODS, "url": "http://127.0.0.1:6066"}
    return web.ENV.get_template("kpis.html").render(
        request=None, path="/kpis", session=session, start=kpis.START, **base, **context
    )


def test_the_page_says_what_to_run_or_that_the_app_is_starting_or_shows_the_figures() -> None:
    down = render(unavailable="nothing <answers>", kpis=None, view=None)
    assert "nothing &lt;answers&gt;" in down and "finsync run finance-analytics" in down
    k = parse(answer(row(LAST, open_ar="1500", aging="500 1000 0 0 0")))
    starting = render(unavailable=None, kpis=replace(k, ready=False), view=None)
    assert 'data-testid="kpis-starting"' in starting and "kpi-open-ar" not in starting
    shown = render(unavailable=None, kpis=k, view=kpis.view(k, "", "", 90))
    assert 'data-testid="kpi-open-ar"' in shown and "1,500.00" in shown
    assert shown.count('<rect class="bar k') == 2 and "<script" not in shown.split("</head>")[1]
    assert 'style="' not in shown  # the Content-Security-Policy allows no inline style
