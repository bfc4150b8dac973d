"""Small server-side SVG charts for the usage page: no script, no CDN, readable by
screen readers (a title, a description and a table of the same numbers beside them).
Colours come from CSS classes, so dark mode follows the page."""

from __future__ import annotations

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 200, 48, 24, 10


def _scale(values: list[float]) -> float:
    top = max([v for v in values if v is not None] or [0])
    return top if top > 0 else 1


def decimals(top: float) -> int:
    """Places that show the axis's middle tick with two significant digits: $0.0001 is
    not $0.00."""
    middle = top / 2
    if middle >= 10 or middle <= 0:
        return 0
    return min(8, max(0, 1 - math.floor(math.log10(middle))))


def _ticks(top: float, unit: str) -> list[str]:
    places = decimals(top)
    return [f"{escape(unit)}{top * i / 2:,.{places}f}" for i in range(3)]


def _left(ticks: list[str]) -> int:
    """Room for the longest tick label ($0.000120 needs more than 1,600)."""
    return max(LEFT, 7 * max(len(t) for t in ticks) + 12)


def _axis(ticks: list[str], left: int) -> str:
    lines = []
    for i, shown in enumerate(ticks):
        y = HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * i / 2
        lines.append(
            f'<line class="grid" x1="{left}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{shown}</text>'
        )
    return "".join(lines)


def _labels(labels: list[str], left: int) -> str:
    if not labels:
        return ""
    step = (WIDTH - left) / len(labels)
    every = max(1, len(labels) // 7)
    return "".join(
        f'<text class="tick" x="{left + step * (i + 0.5):.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    )


def _frame(title: str, summary: str, body: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every value above is a number or escaped
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}: {escape(summary)}" preserveAspectRatio="none">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def bars(title: str, labels: list[str], values: list[float], unit: str = "") -> SafeString:
    top = _scale(values)
    ticks = _ticks(top, unit)
    left = _left(ticks)
    step = (WIDTH - left) / max(1, len(values))
    body = [_axis(ticks, left)]
    for i, value in enumerate(values):
        h = (HEIGHT - BOTTOM - TOP) * (value or 0) / top
        x = left + step * i + step * 0.15
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{escape(labels[i])}: '
            f"{escape(unit)}{value:,.4g}</title></rect>"
        )
    body.append(_labels(labels, left))
    summary = f"{len(values)} days, highest {unit}{max(values or [0]):,.4g}"
    return _frame(title, summary, "".join(body))


def lines(title: str, labels: list[str], series: dict[str, list], unit: str = "") -> SafeString:
    """Several lines over the same days; a None is a gap."""
    top = _scale([v for values in series.values() for v in values if v is not None])
    ticks = _ticks(top, unit)
    left = _left(ticks)
    step = (WIDTH - left) / max(1, len(labels))
    body = [_axis(ticks, left)]
    for n, (name, values) in enumerate(series.items()):
        points = [
            f"{left + step * (i + 0.5):.1f},{HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * v / top:.1f}"
            for i, v in enumerate(values)
            if v is not None
        ]
        if len(points) > 1:
            body.append(
                f'<polyline class="line line-{n}" points="{" ".join(points)}">'
                f"<title>{escape(name)}</title></polyline>"
            )
        for point in points:  # a dot on each: one day of data still shows
            x, y = point.split(",")
            body.append(
                f'<circle class="dot dot-{n}" cx="{x}" cy="{y}" r="{3.5 + 2 * (len(series) - 1 - n)}">'
                f"<title>{escape(name)}</title></circle>"
            )
    body.append(_labels(labels, left))
    names = ", ".join(series)
    return _frame(title, f"{names} over {len(labels)} days", "".join(body))
