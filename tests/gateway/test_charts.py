"""The usage charts: one day of data still draws, and small amounts keep their digits."""

from __future__ import annotations

import pytest

from integrations.gateway import charts


def test_a_single_day_draws_a_dot_not_an_empty_line():
    svg = str(charts.lines("Latency", ["Dec 04"], {"p50": [120], "p95": [400]}))
    assert svg.count("<circle") == 2 and "<polyline" not in svg


def test_two_days_draw_a_line_with_a_dot_on_each_day():
    svg = str(charts.lines("Errors", ["Dec 03", "Dec 04"], {"errors": [0.5, None]}))
    assert svg.count("<circle") == 1  # a gap is no dot
    svg = str(charts.lines("Errors", ["Dec 03", "Dec 04"], {"errors": [0.5, 1.0]}))
    assert svg.count("<circle") == 2 and svg.count("<polyline") == 1


@pytest.mark.parametrize(
    ("top", "ticks"),
    [(0.0002, ["$0.00000", "$0.00010", "$0.00020"]), (0.06, ["$0.000", "$0.030", "$0.060"]),
     (3, ["$0.0", "$1.5", "$3.0"]), (500, ["$0", "$250", "$500"])],
)  # fmt: skip
def test_the_cost_axis_shows_the_digits_that_matter(top, ticks):
    svg = str(charts.bars("Cost", ["a", "b"], [top / 2, top], "$"))
    for tick in ticks:
        assert f">{tick}</text>" in svg
