"""A self-contained HTML report (inline SVG, no network, no plotting library) and its charts as files.

Charts: response and completion latency CDFs per run (request vs event, on a
log latency axis), flows in progress over time, the consistency-window
(stale-read) curve of every read model, and the monthly broker cost per
run/provider; tables of the headline numbers. Each run (topology, or
topology@provider) keeps one colour in every chart; the variants of one run
(flows, response or completion, read models) differ by dash pattern. Every
chart is also written as a standalone ``<slug>.svg`` (for slides).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from polybus.sim.plot import DASHES, Axis, Bar, Series, bar_chart, colours, line_chart


@dataclass(frozen=True)
class Chart:
    """One chart of the report: a slug for its file and anchor, its title and its SVG markup."""

    slug: str
    title: str
    svg: str


def charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The report's charts for a run document (the JSON of docs/sim.md)."""
    runs: Mapping[str, Any] = doc["runs"]
    colour = colours(runs)  # one colour per run, the same in every chart
    backlog = [
        Series(
            key, _floats(r["backlog"]["t"]), _values(r["backlog"]["in_flight"]["mean"]), colour[key]
        )
        for key, r in runs.items()
    ]
    stale = [
        Series(
            f"{key} {name}",
            _floats(m["stale_grid"]),
            _values(m["p_stale"]["mean"]),
            colour[key],
            _dash(i),
        )
        for key, r in runs.items()
        for i, (name, m) in enumerate(r["read_models"].items())
    ]
    return [
        _line("latency-cdf", "Latency CDF (mean quantiles over replications)",
              Axis("latency", log=True, unit="s"),  # log: the tail spreads over decades
              Axis("percent of requests", lo=0, hi=100), _cdf_series(runs, colour)),
        _line("backlog", "Flows in progress over time",
              Axis("simulated seconds", lo=0), Axis("flows in progress", lo=0), backlog),
        _line("consistency-window", "P(read t seconds after a write is stale)",
              Axis("t", unit="s", lo=0), Axis("probability stale", lo=0, hi=1), stale),
        Chart("cost", COST_TITLE, bar_chart(COST_TITLE, Axis("USD / month"), [
            Bar(key, r["cost"]["total"], colour[key]) for key, r in runs.items()
        ])),
    ]  # fmt: skip


COST_TITLE = "Broker cost per month (USD)"


def _line(slug: str, title: str, x: Axis, y: Axis, series: Sequence[Series]) -> Chart:
    return Chart(slug, title, line_chart(title, x, y, series))


def _cdf_series(runs: Mapping[str, Any], colour: Mapping[str, str]) -> list[Series]:
    """Response and (when the run has topics) completion CDFs of every flow of every run."""
    out = []
    for key, run in runs.items():
        kinds = ("latency", "completion") if run["topics"] else ("latency",)
        for variant, (flow, kind) in enumerate((fl, k) for fl in run["flows"] for k in kinds):
            cdf = run["flows"][flow][kind]["cdf"]
            label = f"{key} {flow} {'response' if kind == 'latency' else 'completion'}"
            xs, ys = _floats(cdf["x"]["mean"]), _values(cdf["percent"])
            out.append(Series(label, xs, ys, colour[key], _dash(variant)))
    return out


def sweep_chart(doc: Mapping[str, Any]) -> str:
    """SVG of a one-parameter sweep document: the metric against the parameter, one line per run."""
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


def _table(doc: Mapping[str, Any]) -> str:
    rows = []
    for key, run in doc["runs"].items():
        for flow, f in run["flows"].items():

            def ms(stat: Mapping[str, Any]) -> str:
                m = stat.get("mean")
                hw = stat.get("halfwidth")
                if m is None or (isinstance(m, float) and math.isnan(m)):
                    return "-"
                return f"{m * 1000:.1f}" + (
                    f" ± {hw * 1000:.1f}" if hw is not None and not math.isnan(hw) else ""
                )

            sr = f["success_rate"]["mean"]
            rows.append(
                "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in (
                    key, flow, ms(f["latency"]["mean"]), ms(f["latency"]["p99"]), ms(f["completion"]["p99"]),
                    "-" if sr is None else f"{sr * 100:.2f}%", f"{run['cost']['total']:,.2f}",
                )) + "</tr>"
            )  # fmt: skip
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "run",
            "flow",
            "response mean ms",
            "response p99 ms",
            "completion p99 ms",
            "success",
            "USD / month",
        )
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Marks the body with how many charts laid out with a non-empty drawing, and
# how many pairs of labels overlap or legend entries cover a curve as laid
# out, so a headless browser (tests/sim/test_report_chromium.py) can check
# the charts rendered readably.
RENDER_CHECK = """
window.addEventListener("load", function () {
  function meet(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  var ok = 0, clashes = 0;
  document.querySelectorAll("figure[data-chart] svg").forEach(function (svg) {
    var box = svg.getBBox();
    var marks = svg.querySelectorAll(".series");
    if (box.width > 0 && box.height > 0 && marks.length > 0) { ok += 1; }
    var texts = Array.from(svg.querySelectorAll("text")).map(function (t) {
      return t.getBoundingClientRect();
    });
    texts.forEach(function (a, i) {
      texts.slice(i + 1).forEach(function (b) { if (meet(a, b)) { clashes += 1; } });
    });
    svg.querySelectorAll(".legend > *").forEach(function (entry) {
      var e = entry.getBoundingClientRect();
      marks.forEach(function (m) { if (meet(e, m.getBoundingClientRect())) { clashes += 1; } });
    });
  });
  document.body.setAttribute("data-charts-rendered", String(ok));
  document.body.setAttribute("data-chart-clashes", String(clashes));
});
"""


def write_report(doc: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write index.html (self-contained) and one standalone SVG per chart into `out_dir`; return the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for chart in charts(doc):
        (out / f"{chart.slug}.svg").write_text(XML_DECLARATION + chart.svg + "\n", encoding="utf-8")
        figures.append(f'<figure data-chart="{chart.slug}">{chart.svg}<figcaption>{escape(chart.title)} '
                       f'(<a href="{chart.slug}.svg">SVG</a>)</figcaption></figure>')  # fmt: skip
    seeds = ", ".join(f"[{a}, {b}]" for a, b in doc["replication_seeds"])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(doc["scenario"])}: simulation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{margin:1.5em 0}}
svg.chart{{max-width:100%;height:auto}}</style></head>
<body>
<h1>{escape(doc["scenario"])}</h1>
<p>{escape(doc["file"])}: seed {doc["seed"]}, {doc["completed_replications"]} of {doc["replications"]} replications,
{doc["duration"]:.0f} s simulated each (warm-up {doc["warmup"]:.0f} s). Replication seeds: {escape(seeds)}.
Means with 95% confidence-interval half-widths over replications.</p>
{_table(doc)}
{"".join(figures)}
<script>{RENDER_CHECK}</script>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
