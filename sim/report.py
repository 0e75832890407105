"""A self-contained HTML report (inline SVG, no network, no plotting library) and its charts as files.

The page opens with a headline written from the numbers (sim.narrative), the
scenario's description and lesson, then the charts: response and completion
latency CDFs per run (log latency axis), the tail from p90 to p99.9 on a
"nines" axis, flows in progress over time, the consistency-window (stale-read)
curve of every read model, and the monthly broker cost per run/provider; then
tables of the headline numbers, utilisation, throttling, read models and
faults, and the assumptions (each profile figure published with its source,
or an estimate). Each run (topology, or topology@provider) keeps one colour in
every chart; the variants of one run (flows, response or completion, read
models) differ by dash pattern; with two or more replications every curve
carries its 95% confidence band. Every chart is also written as a standalone
``<slug>.svg`` (for slides).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from polybus.sim import narrative
from polybus.sim.plot import DASHES, Axis, Band, Bar, Series, bar_chart, colours, line_chart

TAIL_PERCENTS = (90.0, 95.0, 97.5, 99.0, 99.5, 99.9)
TAIL_TICKS = (90.0, 95.0, 99.0, 99.5, 99.9)


@dataclass(frozen=True)
class Chart:
    """One chart of the report: a slug for its file and anchor, its title and its SVG markup."""

    slug: str
    title: str
    svg: str


def charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The report's charts for a run document (the JSON of docs/sim.md); charts with nothing to draw are left out."""
    runs: Mapping[str, Any] = doc["runs"]
    colour = colours(runs)  # one colour per run, the same in every chart
    backlog = [
        _banded(key, r["backlog"]["t"], r["backlog"]["in_flight"], colour[key])
        for key, r in runs.items()
    ]
    stale = [
        _banded(f"{key} {name}", m["stale_grid"], m["p_stale"], colour[key], _dash(i))
        for key, r in runs.items()
        for i, (name, m) in enumerate(r.get("read_models", {}).items())
    ]
    bars = [
        Bar(key, float(r["cost"]["total"]), colour[key]) for key, r in runs.items() if "cost" in r
    ]
    out = [
        _line("latency-cdf", "Latency CDF (mean quantiles over replications)",
              Axis("latency", log=True, unit="s"),  # log: the tail spreads over decades
              Axis("percent of requests", lo=0, hi=100), _cdf_series(runs, colour)),
        _line("latency-tail", "Latency tail, p90 to p99.9",
              Axis("percentile", ticks=tuple((_nines(p), _pname(p)) for p in TAIL_TICKS)),
              Axis("latency", log=True, unit="s"), _tail_series(runs, colour)),
        _line("backlog", "Flows in progress over time",
              Axis("simulated seconds", lo=0), Axis("flows in progress", lo=0), backlog),
        _line("consistency-window", "P(read t seconds after a write is stale)",
              Axis("t", unit="s", lo=0), Axis("probability stale", lo=0, hi=1), stale),
        Chart("cost", COST_TITLE, bar_chart(COST_TITLE, Axis("USD / month"), bars)),
    ]  # fmt: skip
    keep = {
        "consistency-window": bool(stale),
        "cost": any(r.get("topics") for r in runs.values()),
    }
    return [c for c in out if keep.get(c.slug, bool(runs))]


COST_TITLE = "Broker cost per month (USD)"


def _line(slug: str, title: str, x: Axis, y: Axis, series: Sequence[Series]) -> Chart:
    return Chart(slug, title, line_chart(title, x, y, series))


def _cdf_series(runs: Mapping[str, Any], colour: Mapping[str, str]) -> list[Series]:
    """Response and (when the run has topics) completion CDFs of every flow of every run, with bands."""
    out = []
    for key, run, variant, flow, kind in _variants(runs):
        cdf = run["flows"][flow][kind]["cdf"]
        label = f"{key} {flow} {'response' if kind == 'latency' else 'completion'}"
        percents = tuple(float(p) for p in cdf["percent"])
        out.append(_banded(label, percents, cdf["x"], colour[key], _dash(variant), along_x=True))
    return out


def _tail_series(runs: Mapping[str, Any], colour: Mapping[str, str]) -> list[Series]:
    """The CDF points from p90 up, against -log10(1 - p) so each nine gets the same width."""
    out = []
    for key, run, variant, flow, kind in _variants(runs):
        cdf = run["flows"][flow][kind]["cdf"]
        idx = [i for i, p in enumerate(cdf["percent"]) if float(p) in TAIL_PERCENTS]
        xs = tuple(_nines(float(cdf["percent"][i])) for i in idx)
        pick = {
            "mean": [cdf["x"]["mean"][i] for i in idx],
            "halfwidth": [
                (cdf["x"].get("halfwidth") or [None] * len(cdf["percent"]))[i] for i in idx
            ],
        }
        label = f"{key} {flow} {'response' if kind == 'latency' else 'completion'}"
        out.append(_banded(label, xs, pick, colour[key], _dash(variant)))
    return out


def _variants(runs: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], int, str, str]]:
    """(run key, run, variant number, flow, 'latency' | 'completion') of every curve of every run."""
    out = []
    for key, run in runs.items():
        kinds = ("latency", "completion") if run.get("topics") else ("latency",)
        pairs = [(fl, k) for fl in run["flows"] for k in kinds]
        out += [(key, run, i, fl, k) for i, (fl, k) in enumerate(pairs)]
    return out


def _banded(
    name: str, grid: Sequence[float], series: Mapping[str, Any], colour: str, dash: str = "",
    along_x: bool = False,
) -> Series:  # fmt: skip
    """A series from a pointwise {mean, halfwidth} over `grid`; the band is mean ± halfwidth.

    `along_x`: the summary gives x values (a CDF's quantiles) and `grid` the y values.
    """
    mid = _values(series["mean"])
    hws = list(series.get("halfwidth") or [])
    hws += [None] * (len(mid) - len(hws))
    lo = tuple(None if m is None or h is None else m - h for m, h in zip(mid, hws, strict=False))
    hi = tuple(None if m is None or h is None else m + h for m, h in zip(mid, hws, strict=False))
    fixed = _floats(grid)[: len(mid)]
    has_band = any(v is not None for v in lo)
    if along_x:
        band = Band(_floats(lo), fixed, _floats(hi), fixed) if has_band else None
        return Series(name, _floats(mid), fixed, colour, dash, band)
    band = Band(fixed, lo, fixed, hi) if has_band else None
    return Series(name, fixed, mid, colour, dash, band)


def _nines(percent: float) -> float:
    """Position of a percentile on the tail axis: 90 -> 1, 99 -> 2, 99.9 -> 3."""
    return -math.log10(1 - percent / 100)


def _pname(percent: float) -> str:
    return f"p{percent:g}"


def sweep_chart(doc: Mapping[str, Any] | Any) -> str:
    """SVG of a one-parameter sweep document: the metric against the parameter, one line per run."""
    doc = narrative.as_document(doc)
    name = next(iter(doc["params"]))
    points: Sequence[Mapping[str, Any]] = doc["points"]
    keys = list(points[0]["metric"]) if points else []
    colour = colours(keys)
    xs = tuple(float(p["params"][name]) for p in points)
    series = [
        Series(k, xs, tuple((p["metric"].get(k) or {}).get("mean") for p in points), colour[k])
        for k in keys
    ]
    metric = str(doc["metric"])
    timed = any(part in metric.split(".") for part in ("latency", "completion", "window"))
    positive = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 100
    return line_chart(
        f"{metric} against {name}",
        Axis(name, log=positive),
        Axis(metric, unit="s" if timed else "", lo=0),
        series,
    )


def _dash(variant: int) -> str:
    return DASHES[variant % len(DASHES)]


def _floats(values: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(math.nan if v is None else float(v) for v in values)


def _values(values: Sequence[float | None]) -> tuple[float | None, ...]:
    return tuple(None if v is None else float(v) for v in values)


def _ms(stat: object) -> str:
    """A summary in ms with its half-width: '81.2 ± 3.1'."""
    m, hw = narrative.mean(stat), narrative.halfwidth(stat)
    if m is None:
        return "-"
    return f"{m * 1000:.1f}" + (f" ± {hw * 1000:.1f}" if hw is not None else "")


def _pct(stat: object) -> str:
    m, hw = narrative.mean(stat), narrative.halfwidth(stat)
    if m is None:
        return "-"
    return f"{m * 100:.1f}%" + (f" ± {hw * 100:.1f}" if hw is not None else "")


def _num(stat: object, digits: int = 1) -> str:
    m = narrative.mean(stat)
    return "-" if m is None else f"{m:,.{digits}f}"


def _html_table(
    caption: str, head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1
) -> str:
    """A table (first `left` columns left-aligned, the rest numbers); '' when there are no rows."""
    if not rows:
        return ""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"l" if i < left else "n"}">{escape(c)}</td>' for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><caption>{escape(caption)}</caption><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def tables(doc: Mapping[str, Any]) -> list[str]:
    """The report's tables as HTML: latency, utilisation, throttling, read models, faults (empty ones skipped)."""
    runs: Mapping[str, Any] = doc["runs"]
    latency = [
        [key, flow, _ms(f["latency"]["mean"]), _ms(f["latency"]["p99"]), _ms(f["latency"]["p999"]),
         _ms(f["completion"]["mean"]), _ms(f["completion"]["p99"]), _pct(f["success_rate"]),
         _num(f["throughput"]), f"{run['cost']['total']:,.2f}" if "cost" in run else "-"]
        for key, run in runs.items() for flow, f in run["flows"].items()
    ]  # fmt: skip
    util = []
    for key, run in runs.items():
        notes = " ".join(narrative.overload_notes(key, run))
        for name, sv in run["services"].items():
            flag = "saturated" if name in notes else ""
            offered, capacity = (
                narrative.mean(sv.get("offered")),
                narrative.mean(sv.get("capacity")),
            )
            load = "-" if offered is None or not capacity else f"{offered:.2f} / {capacity:g}"
            util.append([key, name, _pct(sv["utilisation"]), load, _num(sv["L"], 2),
                         _num(sv["lambda"]), _ms(sv["W"]), _ms(sv["Wq"]), flag])  # fmt: skip
    topics = [
        [key, name, run["provider"], _num(t["events_per_s"]), _num(t["requests_per_s"]),
         _pct(t["throttle_rate"]), _num(t["publish_failed"], 0), _num(t["dead_lettered"], 0),
         f"{run['cost']['topics'].get(name, 0.0):,.2f}" if "cost" in run else "-"]
        for key, run in runs.items() for name, t in run.get("topics", {}).items()
    ]  # fmt: skip
    models = [
        [key, name, _ms(m["window"]["p50"]), _ms(m["window"]["p99"]), _num(m["lost"], 0),
         *[f"{v:.3f}" if v is not None else "-" for v in m["p_stale"]["mean"]]]
        for key, run in runs.items() for name, m in run.get("read_models", {}).items()
    ]  # fmt: skip
    grid: list[float] = next(
        (m["stale_grid"] for r in runs.values() for m in r.get("read_models", {}).values()), []
    )
    faults = [
        [key, f"{f['service']} {f['kind']} {f['start']:.0f}-{f['end']:.0f} s",
         _pct(f["before"]["success_rate"]), _pct(f["during"]["success_rate"]), _pct(f["after"]["success_rate"]),
         _ms(f["before"]["latency_mean"]), _ms(f["during"]["latency_mean"]), _num(f["peak_backlog"], 0),
         _num(f["drain_time"])]
        for key, run in runs.items() for f in narrative.faults_of(run)
    ]  # fmt: skip
    return [t for t in (
        _html_table("Latency per flow, ms (mean ± 95% CI half-width)",
                    ("run", "flow", "response mean", "p99", "p99.9", "completion mean", "completion p99",
                     "success", "throughput /s", "USD / month"), latency, 2),
        _html_table("Utilisation per service (L: mean in service or queue; W, Wq in ms)",
                    ("run", "service", "utilisation", "offered / capacity", "L", "λ /s", "W", "Wq",
                     "flag"), util, 2),
        _html_table("Broker: throughput, throttling and cost",
                    ("run", "topic", "provider", "events /s", "publish requests /s", "throttled",
                     "publish failed", "dead-lettered", "USD / month"), topics, 3),
        _html_table("Consistency window per read model (ms) and P(stale) a given time after the write",
                    ("run", "read model", "window p50", "window p99", "lost",
                     *[f"P(stale) @{g:g} s" for g in grid]), models, 2),
        _html_table("Faults: entry success and latency before / during / after the window",
                    ("run", "fault", "success before", "during", "after", "latency before ms",
                     "during ms", "peak in progress", "drain time s"), faults, 2),
    ) if t]  # fmt: skip


def assumptions_table(doc: Mapping[str, Any]) -> str:
    """The model's inputs: each profile figure published (with source and date read) or estimated."""
    rows = [
        [a.where, a.field, a.value, a.kind, a.source, a.read] for a in narrative.assumptions(doc)
    ]
    return _html_table(
        "Assumptions: published figures with their source, estimates, and the scenario's own inputs",
        ("where", "figure", "value", "kind", "source", "read"), rows, 6,
    )  # fmt: skip


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Marks the body with how many charts laid out with a non-empty drawing, how
# many pairs of labels overlap or legend entries cover a curve, and how many
# labels (other than a bar's value) land on a plot rectangle (`data-plot`), so
# a headless browser (tests/sim/test_report_chromium.py, the lab's test) can
# check the charts rendered readably. `polybusCheckCharts()` reruns it.
RENDER_CHECK = """
function polybusCheckCharts() {
  function meet(a, b) {
    return a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  }
  var ok = 0, clashes = 0, onPlot = 0;
  document.querySelectorAll("figure[data-chart] svg").forEach(function (svg) {
    var box = svg.getBBox();
    var marks = svg.querySelectorAll(".series");
    if (box.width > 0 && box.height > 0 && marks.length > 0) { ok += 1; }
    var r = svg.getBoundingClientRect(), k = r.width / svg.viewBox.baseVal.width;
    var p = (svg.getAttribute("data-plot") || "0 0 0 0").split(" ").map(Number);
    var plot = {left: r.left + p[0] * k, top: r.top + p[1] * k,
                right: r.left + (p[0] + p[2]) * k, bottom: r.top + (p[1] + p[3]) * k};
    var nodes = Array.from(svg.querySelectorAll("text"));
    var texts = nodes.map(function (t) { return t.getBoundingClientRect(); });
    texts.forEach(function (a, i) {
      texts.slice(i + 1).forEach(function (b) { if (meet(a, b)) { clashes += 1; } });
      if (!nodes[i].classList.contains("value") && meet(a, plot)) { onPlot += 1; }
    });
    svg.querySelectorAll(".legend > *").forEach(function (entry) {
      var e = entry.getBoundingClientRect();
      marks.forEach(function (m) { if (meet(e, m.getBoundingClientRect())) { clashes += 1; } });
    });
  });
  document.body.setAttribute("data-charts-rendered", String(ok));
  document.body.setAttribute("data-chart-clashes", String(clashes));
  document.body.setAttribute("data-text-on-plot", String(onPlot));
}
window.addEventListener("load", polybusCheckCharts);
"""

STYLE = """
body{font-family:sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
.headline{font-size:1.1em;background:#f4f7fb;border-left:4px solid #0072b2;padding:.6em 1em}
.headline li{margin:.25em 0}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
caption{text-align:left;font-weight:bold;padding:.3em 0}
td,th{border:1px solid #ccc;padding:3px 7px}td.n{text-align:right}td.l{text-align:left}
figure{margin:1.5em 0}svg.chart{max-width:100%;height:auto}
.note{color:#555;font-size:.9em}
"""


def figures(doc: Mapping[str, Any]) -> list[tuple[Chart, str]]:
    """Each chart with its <figure> markup (the SVG inline, a link to its standalone file)."""
    return [
        (c, f'<figure data-chart="{c.slug}">{c.svg}<figcaption>{escape(c.title)} '
            f'(<a href="{c.slug}.svg">SVG</a>)</figcaption></figure>')
        for c in charts(doc)
    ]  # fmt: skip


def write_report(doc: Mapping[str, Any] | Any, out_dir: str | Path) -> Path:
    """Write index.html (self-contained) and one standalone SVG per chart into `out_dir`; return the page.

    `doc` is the JSON document (schema ``polybus.sim/1``) or a typed result with ``to_json()``.
    """
    doc = narrative.as_document(doc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures(doc)
    for chart, _ in figs:
        (out / f"{chart.slug}.svg").write_text(XML_DECLARATION + chart.svg + "\n", encoding="utf-8")
    text = narrative.scenario_text(doc)
    seeds = ", ".join(f"[{a}, {b}]" for a, b in doc["replication_seeds"])
    story = "".join(f"<li>{escape(line)}</li>" for line in narrative.headline(doc))
    about = (f"<h2>Scenario</h2><p>{escape(text.description)}</p>" if text.description else "") + (
        f"<h2>Lesson</h2><p>{escape(text.lesson)}</p>" if text.lesson else ""
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(doc["scenario"])}: simulation report</title>
<style>{STYLE}</style></head>
<body>
<h1>{escape(doc["scenario"])}</h1>
<ul class="headline">{story}</ul>
{about}
<p class="note">{escape(doc["file"])}: seed {doc["seed"]}, {doc["completed_replications"]} of {doc["replications"]}
replications, {doc["duration"]:.0f} s simulated each (warm-up {doc["warmup"]:.0f} s). Replication seeds:
{escape(seeds)}. {escape(narrative.confidence_note(doc))}</p>
<h2>Charts</h2>
{"".join(f for _, f in figs)}
<h2>Tables</h2>
{"".join(tables(doc))}
<h2>Assumptions</h2>
{assumptions_table(doc)}
<script>{RENDER_CHECK}</script>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
