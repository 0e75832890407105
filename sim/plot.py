"""Dependency-free SVG line charts (self-contained: open the file anywhere, no network)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def line_chart(
    title: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]],
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 360,
) -> str:
    """An SVG chart with one polyline (and point markers) per named (xs, ys) series."""
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys, strict=True) if _ok(y)]
    left, right, top, bottom = 70, 20, 40, 50
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)  # type: ignore[type-var]
    else:
        x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)  # type: ignore[operator]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # type: ignore[operator]

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">{escape(x_label)}</text>',
        f'<text x="15" y="{height / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 15 {height / 2})">{escape(y_label)}</text>',
    ]
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        yv = y0 + (y1 - y0) * i / 4  # type: ignore[operator]
        out.append(
            f'<text x="{sx(xv):.1f}" y="{height - bottom + 15}" text-anchor="middle" font-size="10">{_fmt(xv)}</text>'
        )
        out.append(
            f'<text x="{left - 5}" y="{sy(yv) + 3:.1f}" text-anchor="end" font-size="10">{_fmt(yv)}</text>'
        )
    for n, (name, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        coords = [f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True) if _ok(y)]  # type: ignore[arg-type]
        if coords:
            out.append(
                f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>'
            )
        if len(coords) <= 40:
            out += [
                f'<circle cx="{c.split(",")[0]}" cy="{c.split(",")[1]}" r="3" fill="{color}"/>'
                for c in coords
            ]
        out.append(
            f'<text x="{width - right - 150}" y="{top + 15 * n}" font-size="11" fill="{color}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _ok(y: float | None) -> bool:
    return y is not None and not math.isnan(y) and not math.isinf(y)


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def bar_chart(
    title: str, values: Mapping[str, float], y_label: str, width: int = 640, height: int = 360
) -> str:
    """An SVG bar chart, one labelled bar per entry."""
    left, right, top, bottom = 70, 20, 40, 70
    top_value = max([v for v in values.values() if _ok(v)] or [1.0]) or 1.0
    n = max(1, len(values))
    slot = (width - left - right) / n
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="15" y="{height / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 15 {height / 2})">{escape(y_label)}</text>',
    ]
    for i, (label, value) in enumerate(values.items()):
        v = value if _ok(value) else 0.0
        h = v / top_value * (height - top - bottom)
        x = left + i * slot + slot * 0.15
        out.append(
            f'<rect class="series" x="{x:.1f}" y="{height - bottom - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        out.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom - h - 4:.1f}" text-anchor="middle" font-size="10">{_fmt(v)}</text>'
        )
        out.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 15}" text-anchor="middle" font-size="10">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
