"""Dependency-free SVG charts: line charts and bar charts written as plain markup.

The markup is self-contained (no script, font or stylesheet from elsewhere),
so the same string is inlined in the HTML report and written as a standalone
``.svg`` file. Axes get "nice" ticks (1, 2 and 5 times a power of ten, on a
linear or a logarithmic scale, or ticks the caller names), the legend sits
below the plot so it never covers a curve, and every series carries its own
colour and dash pattern: callers pick them (see `colours`) so one run keeps
its colour across charts. A series may carry a confidence band, drawn as a
translucent area in its colour under the line. Each chart's ``<svg>`` names
its plot rectangle in ``data-plot`` (x y width height, in viewBox units) so a
browser check can verify no text lands on the plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

# Okabe & Ito's colour-blind-safe palette (yellow dropped: unreadable on white), then two more.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b")
DASHES = ("", "7 4", "2 3", "10 3 2 3")  # stroke-dasharray per variant of one colour
MARKERS_UP_TO = 12  # series with at most this many points also get a dot per point
BAND_OPACITY = 0.15

WIDTH = 720
PLOT_HEIGHT = 260
TOP = 34  # room for the title
RIGHT = 24
FONT = 11
CHAR_WIDTH = 6.4  # a generous estimate of one sans-serif character at FONT px
LEGEND_ROW = 17
LEGEND_SAMPLE = 26  # length of the line sample in front of each legend entry
LEGEND_MIN_COLUMN = 140

_Map = Callable[[float], float]  # data value -> pixel


@dataclass(frozen=True)
class Axis:
    """One axis: its label, scale and unit; `lo`/`hi` are values the range must include."""

    label: str
    log: bool = False
    unit: str = ""  # "s" labels ticks as s/ms/µs; "" as plain numbers (k, M, G for large ones)
    lo: float | None = None
    hi: float | None = None
    ticks: tuple[tuple[float, str], ...] = ()  # (position, label): replaces the 1-2-5 ticks


@dataclass(frozen=True)
class Band:
    """A confidence band: its lower and upper edge as points (None or NaN leave a gap)."""

    lo_xs: tuple[float, ...]
    lo_ys: tuple[float | None, ...]
    hi_xs: tuple[float, ...]
    hi_ys: tuple[float | None, ...]


@dataclass(frozen=True)
class Series:
    """One named curve: points (None or NaN leave a gap), its colour, dash pattern and optional band."""

    name: str
    xs: tuple[float, ...]
    ys: tuple[float | None, ...]
    colour: str = PALETTE[0]
    dash: str = ""
    band: Band | None = None


@dataclass(frozen=True)
class Bar:
    """One labelled bar."""

    label: str
    value: float
    colour: str = PALETTE[0]


@dataclass(frozen=True)
class Scale:
    """The range of one axis (linear or log) and the values to label and grid."""

    lo: float
    hi: float
    log: bool
    ticks: tuple[float, ...]
    minor: tuple[float, ...] = ()

    def fraction(self, v: float) -> float:
        """Where `v` falls between lo (0.0) and hi (1.0)."""
        if self.log:
            return (math.log10(v) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo)
            )
        return (v - self.lo) / (self.hi - self.lo)


def colours(keys: Iterable[str]) -> dict[str, str]:
    """A distinct palette colour for each key, in order (wrapping after the palette)."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(dict.fromkeys(keys))}


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= `raw` (> 0)."""
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power  # unreachable: 10 * power > raw


def linear_scale(lo: float, hi: float, target: int = 5) -> Scale:
    """A linear range widened to whole 1-2-5 steps around [lo, hi], about `target` intervals."""
    if hi <= lo:  # one value: a range around it, from zero when the value is zero
        pad = abs(lo) / 2 or 1.0
        lo, hi = (0.0 if lo == 0 else lo - pad), lo + pad
    step = nice_step((hi - lo) / target)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = tuple(_clean(i * step) for i in range(first, last + 1))
    return Scale(ticks[0], ticks[-1], False, ticks)


def log_scale(lo: float, hi: float) -> Scale:
    """A log range from the 1-2-5 value at or below `lo` to the one at or above `hi` (both > 0).

    Up to three decades every 1-2-5 value is labelled; beyond that only powers
    of ten are, with unlabelled grid lines at the 2s and 5s. Under a factor of
    four a log axis shows little: that range gets linear 1-2-5 ticks, still
    placed on the log scale.
    """
    if hi / lo < 4:
        inner = linear_scale(lo, hi)
        ticks = tuple(t for t in inner.ticks if t > 0)
        if ticks[0] > lo:
            ticks = (_below(lo), *ticks)
        return Scale(ticks[0], ticks[-1], True, ticks)
    start, end = _below(lo), _above(hi)
    values = [
        _clean(m * 10.0**k)
        for k in range(math.floor(math.log10(start)) - 1, math.ceil(math.log10(end)) + 1)
        for m in (1, 2, 5)
    ]
    values = [v for v in values if start * (1 - 1e-9) <= v <= end * (1 + 1e-9)]
    decades = math.log10(end / start)
    if decades <= 3:
        return Scale(start, end, True, tuple(values))
    every = math.ceil(decades / 8)  # at most ~8 labelled decades
    major = tuple(v for v in values if _is_power(v) and round(math.log10(v)) % every == 0)
    minor = tuple(v for v in values if v not in major) if decades <= 6 else ()
    return Scale(start, end, True, major, minor)


def tick_label(v: float, unit: str = "") -> str:
    """A short tick label: seconds as s/ms/µs, thousands as k/M/G, no float noise."""
    if v == 0:
        return "0"
    if unit == "s":
        for factor, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(v) >= factor * 0.999999:
                return f"{_num(v / factor)} {name}"
        return f"{_num(v * 1e9)} ns"
    for factor, suffix, from_ in ((1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
        if abs(v) >= from_:
            return f"{_num(v / factor)}{suffix}"
    return _num(v)


def line_chart(title: str, x: Axis, y: Axis, series: Sequence[Series], width: int = WIDTH) -> str:
    """An SVG line chart: one polyline per unbroken run of points of each series, legend below."""
    points = [_points(s, x, y) for s in series]
    bands = [_band_points(s, x, y) for s in series]
    usable = [p for pts in points for p in pts if p is not None]
    usable += [p for b in bands for pair in b for p in pair]
    sx_scale = _scale(x, [p[0] for p in usable])
    sy_scale = _scale(y, [p[1] for p in usable])
    y_labels = _labels(y, sy_scale)
    left = 30 + round(_text_width(max(y_labels, key=len)))
    plot_w = width - left - RIGHT
    bottom = TOP + PLOT_HEIGHT
    legend, legend_h = _legend(series, left, bottom + 46, plot_w)
    height = bottom + 46 + legend_h

    def px(v: float) -> float:
        return left + sx_scale.fraction(v) * plot_w

    def py(v: float) -> float:
        return bottom - sy_scale.fraction(v) * PLOT_HEIGHT

    out = [_open(title, width, height, (left, TOP, plot_w, PLOT_HEIGHT))]
    out += _grid(sx_scale, sy_scale, px, py, left, bottom, plot_w)
    out += _axes(x, y, sx_scale, sy_scale, y_labels, px, py, left, bottom, plot_w)
    for s, band in zip(series, bands, strict=True):
        out += _band_polygons(s, band, px, py)
    for s, pts in zip(series, points, strict=True):
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        segments: list[list[tuple[float, float]]] = [[]]
        for p in pts:
            if p is not None:
                segments[-1].append((px(p[0]), py(p[1])))
            elif segments[-1]:
                segments.append([])
        drawn = [seg for seg in segments if seg]
        for seg in drawn:
            if len(seg) > 1:
                coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in seg)
                out.append(
                    f'<polyline class="series" fill="none" stroke="{s.colour}" stroke-width="2" '
                    f'stroke-linejoin="round"{dash} points="{coords}"><title>{escape(s.name)}</title></polyline>'
                )
        many = sum(len(seg) for seg in drawn) > MARKERS_UP_TO  # then dots only where no line is
        out += [
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{s.colour}"/>'
            for seg in drawn
            if not many or len(seg) == 1
            for a, b in seg
        ]
    out += legend
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, y: Axis, bars: Sequence[Bar], width: int = WIDTH) -> str:
    """An SVG bar chart: one labelled bar per entry, its value printed above it."""
    values = [b.value if _finite(b.value) else 0.0 for b in bars]
    scale = linear_scale(min([0.0, *values]), max([0.0, *values]))
    if scale.hi == 0:
        scale = linear_scale(0.0, 1.0)
    y_labels = [tick_label(t, y.unit) for t in scale.ticks]
    left = 30 + round(_text_width(max(y_labels, key=len)))
    plot_w = width - left - RIGHT
    bottom = TOP + PLOT_HEIGHT
    slot = plot_w / max(1, len(bars))
    tilt = any(_text_width(b.label) > slot * 0.95 for b in bars)
    label_room = max((_text_width(b.label) for b in bars), default=0.0) * 0.6 + 8 if tilt else 16
    height = round(bottom + label_room + 12)

    def py(v: float) -> float:
        return bottom - scale.fraction(v) * PLOT_HEIGHT

    out = [_open(title, width, height, (left, TOP, plot_w, PLOT_HEIGHT))]
    for t in scale.ticks:
        out.append(_hline(left, plot_w, py(t), "#e5e5e5" if t else "#333"))
        out.append(
            f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{escape(tick_label(t, y.unit))}</text>'
        )
    out.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    out.append(_y_title(y.label, TOP + PLOT_HEIGHT / 2))
    for i, (b, v) in enumerate(zip(bars, values, strict=True)):
        x0 = left + i * slot + slot * 0.2
        top, base = min(py(v), py(0.0)), max(py(v), py(0.0))
        centre = x0 + slot * 0.3
        out.append(
            f'<rect class="series" x="{x0:.1f}" y="{top:.1f}" width="{slot * 0.6:.1f}" '
            f'height="{base - top:.1f}" fill="{b.colour}"><title>{escape(b.label)}</title></rect>'
        )
        out.append(
            f'<text class="value" x="{centre:.1f}" y="{top - 5:.1f}" text-anchor="middle">'
            f"{escape(_amount(b.value))}</text>"
        )
        if tilt:
            out.append(
                f'<text x="{centre:.1f}" y="{bottom + 14}" text-anchor="end" '
                f'transform="rotate(-35 {centre:.1f} {bottom + 14})">{escape(b.label)}</text>'
            )
        else:
            out.append(
                f'<text x="{centre:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(b.label)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _open(title: str, width: int, height: int, plot: tuple[float, float, float, float]) -> str:
    area = " ".join(f"{v:g}" for v in plot)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" data-plot="{area}" '
        f'font-family="sans-serif" font-size="{FONT}" fill="#222">\n'
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>'
    )


def _grid(
    sx: Scale, sy: Scale, px: _Map, py: _Map, left: int, bottom: int, plot_w: int
) -> list[str]:
    out = []
    for v in sx.minor:
        out.append(_vline(px(v), bottom, "#f2f2f2"))
    for v in sy.minor:
        out.append(_hline(left, plot_w, py(v), "#f2f2f2"))
    for v in sx.ticks:
        out.append(_vline(px(v), bottom, "#e5e5e5"))
    for v in sy.ticks:
        out.append(_hline(left, plot_w, py(v), "#e5e5e5"))
    return out


def _axes(
    x: Axis, y: Axis, sx: Scale, sy: Scale, y_labels: list[str], px: _Map, py: _Map,
    left: int, bottom: int, plot_w: int,
) -> list[str]:  # fmt: skip
    out = [
        f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#333"/>',
    ]
    for v, label in zip(sx.ticks, _labels(x, sx), strict=True):
        out.append(
            f'<text x="{px(v):.1f}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    for v, label in zip(sy.ticks, y_labels, strict=True):
        out.append(
            f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
    x_title = x.label + (" (log scale)" if sx.log else "")
    y_title = y.label + (" (log scale)" if sy.log else "")
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 34}" text-anchor="middle">{escape(x_title)}</text>'
    )
    out.append(_y_title(y_title, TOP + PLOT_HEIGHT / 2))
    return out


def _legend(series: Sequence[Series], left: int, top: float, plot_w: int) -> tuple[list[str], int]:
    """Legend entries in columns below the plot, and the height they take."""
    if not series:
        return [], 0
    col_w = max(LEGEND_MIN_COLUMN, LEGEND_SAMPLE + 14 + max(_text_width(s.name) for s in series))
    cols = max(1, min(len(series), int(plot_w // col_w)))
    out = []
    for i, s in enumerate(series):
        x0 = left + (i % cols) * col_w
        y0 = top + (i // cols) * LEGEND_ROW
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<line x1="{x0:.1f}" y1="{y0 - 4:.1f}" x2="{x0 + LEGEND_SAMPLE:.1f}" y2="{y0 - 4:.1f}" '
            f'stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{x0 + LEGEND_SAMPLE + 6:.1f}" y="{y0:.1f}">{escape(s.name)}</text>')
    rows = math.ceil(len(series) / cols)
    return ['<g class="legend">', *out, "</g>"], rows * LEGEND_ROW + 4


def _y_title(label: str, middle: float) -> str:
    return (
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle:.1f})">{escape(label)}</text>'
    )


def _hline(left: float, plot_w: float, y: float, colour: str) -> str:
    return f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{colour}"/>'


def _vline(x: float, bottom: float, colour: str) -> str:
    return f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="{colour}"/>'


def _labels(axis: Axis, scale: Scale) -> list[str]:
    """The tick labels of `axis`: the caller's own, or 1-2-5 values with units."""
    named = dict(axis.ticks)
    return [named.get(t, tick_label(t, axis.unit)) for t in scale.ticks]


def _scale(axis: Axis, values: list[float]) -> Scale:
    """The scale for `axis` covering `values` and the axis's own lo/hi (or its named ticks)."""
    if axis.ticks:
        marks = tuple(sorted(t for t, _ in axis.ticks))
        lo, hi = min([marks[0], *values]), max([marks[-1], *values])
        return Scale(lo, hi, False, marks) if hi > lo else linear_scale(lo, hi)
    fixed = [v for v in (axis.lo, axis.hi) if v is not None and (v > 0 or not axis.log)]
    data = values + fixed
    if axis.log:
        if not data:
            return log_scale(1.0, 10.0)
        return log_scale(min(data), max(data))
    if not data:
        return linear_scale(0.0, 1.0)
    return linear_scale(min(data), max(data))


def _points(s: Series, x: Axis, y: Axis) -> list[tuple[float, float] | None]:
    """Each (x, y) point of `s`, or None where it cannot be drawn (a gap in the line)."""
    return [
        (v, w) if w is not None and _usable(v, x) and _usable(w, y) else None
        for v, w in zip(s.xs, s.ys, strict=True)
    ]


def _band_points(
    s: Series, x: Axis, y: Axis
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The band's (lower, upper) point pairs where both edges can be drawn; empty without a band."""
    b = s.band
    if b is None:
        return []
    out = []
    for lx, ly, hx, hy in zip(b.lo_xs, b.lo_ys, b.hi_xs, b.hi_ys, strict=True):
        if ly is None or hy is None:
            continue
        lx, hx = _clamp(lx, x), _clamp(hx, x)  # a band never widens the axis past its bounds
        ly, hy = _clamp(ly, y), _clamp(hy, y)
        if all(_usable(v, x) for v in (lx, hx)) and all(_usable(v, y) for v in (ly, hy)):
            out.append(((lx, ly), (hx, hy)))
    return out


def _band_polygons(
    s: Series, pairs: list[tuple[tuple[float, float], tuple[float, float]]], px: _Map, py: _Map
) -> list[str]:
    """One translucent polygon: along the lower edge, back along the upper edge."""
    if len(pairs) < 2:
        return []
    ring = [lo for lo, _ in pairs] + [hi for _, hi in reversed(pairs)]
    coords = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in ring)
    return [
        f'<polygon class="band" fill="{s.colour}" fill-opacity="{BAND_OPACITY}" stroke="none" '
        f'points="{coords}"><title>{escape(s.name)} (95% CI)</title></polygon>'
    ]


def _clamp(v: float, axis: Axis) -> float:
    """`v` kept within the axis's own lo/hi where it has them."""
    if axis.lo is not None and v < axis.lo:
        return axis.lo
    if axis.hi is not None and v > axis.hi:
        return axis.hi
    return v


def _usable(v: float | None, axis: Axis) -> bool:
    return v is not None and _finite(v) and (v > 0 or not axis.log)


def _finite(v: float) -> bool:
    return not math.isnan(v) and not math.isinf(v)


def _text_width(text: str) -> float:
    return len(text) * CHAR_WIDTH


def _clean(v: float) -> float:
    """`v` without binary noise (0.30000000000000004 -> 0.3)."""
    return float(f"{v:.12g}")


def _num(v: float) -> str:
    return f"{_clean(v):g}"


def _is_power(v: float) -> bool:
    return abs(math.log10(v) - round(math.log10(v))) < 1e-9


def _below(v: float) -> float:
    """The largest 1-2-5 value <= v (v > 0)."""
    power = 10.0 ** math.floor(math.log10(v) + 1e-9)
    return _clean(max(m * power for m in (1, 2, 5) if m * power <= v * (1 + 1e-9)))


def _above(v: float) -> float:
    """The smallest 1-2-5 value >= v (v > 0)."""
    return _clean(nice_step(v))


def _amount(v: float) -> str:
    if not _finite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"
