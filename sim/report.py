"""A self-contained HTML report (inline SVG, no network needed) and the same charts as PNG.

Charts: response and completion latency CDFs per run (request vs event),
flows in progress over time, the consistency-window (stale-read) curve of
every read model, and the monthly broker cost per run/provider; tables of the
headline numbers. PNGs are drawn with matplotlib (the ``sim`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from polybus.sim.plot import bar_chart, line_chart

Series = Mapping[str, tuple[Sequence[float], Sequence[float | None]]]


@dataclass(frozen=True)
class Chart:
    """One chart, drawable as SVG (for the page) and PNG (for slides)."""

    slug: str
    title: str
    x_label: str
    y_label: str
    series: Series = field(default_factory=dict)
    bars: Mapping[str, float] = field(default_factory=dict)

    def svg(self) -> str:
        """Inline SVG markup."""
        if self.bars:
            return bar_chart(self.title, self.bars, self.y_label)
        return line_chart(self.title, self.series, self.x_label, self.y_label)

    def png(self, path: Path) -> None:
        """Write the chart as a PNG with matplotlib's Agg backend."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        if self.bars:
            ax.bar(list(self.bars), [v if _ok(v) else 0.0 for v in self.bars.values()])
        for name, (xs, ys) in self.series.items():
            pts = [(x, float(y)) for x, y in zip(xs, ys, strict=True) if y is not None and _ok(y)]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o" if len(pts) <= 40 else None,
                    label=name,
                )
        if self.series:
            ax.legend(fontsize=7)
        ax.set_title(self.title, fontsize=10)
        ax.set_xlabel(self.x_label)
        ax.set_ylabel(self.y_label)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _ok(v: float | None) -> bool:
    return v is not None and not math.isnan(v) and not math.isinf(v)


def charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The report's charts for a run document."""
    runs: Mapping[str, Any] = doc["runs"]
    cdf: dict[str, tuple[list[float], list[float | None]]] = {}
    for key, run in runs.items():
        for flow, f in run["flows"].items():
            for kind in ("latency", "completion"):
                if kind == "completion" and not run["topics"]:
                    continue  # no asynchronous work: completion is the response
                c = f[kind]["cdf"]
                label = f"{key} {flow} {'response' if kind == 'latency' else 'completion'}"
                cdf[label] = (
                    [x if x is not None else math.nan for x in c["x"]["mean"]],
                    list(c["percent"]),
                )
    out = [
        Chart(
            "latency-cdf",
            "Latency CDF (mean quantiles over replications)",
            "seconds",
            "percent of requests",
            series={k: (xs, ys) for k, (xs, ys) in cdf.items()},
        ),
        Chart(
            "backlog",
            "Flows in progress over time",
            "simulated seconds",
            "flows in progress",
            series={
                k: (r["backlog"]["t"], r["backlog"]["in_flight"]["mean"]) for k, r in runs.items()
            },
        ),
    ]
    stale = {
        f"{k} {name}": (m["stale_grid"], m["p_stale"]["mean"])
        for k, r in runs.items()
        for name, m in r["read_models"].items()
    }
    out.append(
        Chart(
            "consistency-window",
            "P(read t seconds after a write is stale)",
            "t (s)",
            "probability stale",
            series=stale,
        )
    )
    out.append(
        Chart(
            "cost",
            "Broker cost per month (USD)",
            "run",
            "USD / month",
            bars={k: r["cost"]["total"] for k, r in runs.items()},
        )
    )
    return out


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


# Marks the body with how many charts laid out with a non-empty drawing, so a
# headless browser (tests/sim/test_report_chromium.py) can tell they rendered.
RENDER_CHECK = """
window.addEventListener("load", function () {
  var ok = 0;
  document.querySelectorAll("figure[data-chart] svg").forEach(function (svg) {
    var box = svg.getBBox();
    var marks = svg.querySelectorAll(".series").length;
    if (box.width > 0 && box.height > 0 && marks > 0) { ok += 1; }
  });
  document.body.setAttribute("data-charts-rendered", String(ok));
});
"""


def write_report(doc: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write index.html (self-contained) and one PNG per chart into `out_dir`; return the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for chart in charts(doc):
        chart.png(out / f"{chart.slug}.png")
        figures.append(f'<figure data-chart="{chart.slug}">{chart.svg()}<figcaption>{escape(chart.title)} '
                       f'(<a href="{chart.slug}.png">PNG</a>)</figcaption></figure>')  # fmt: skip
    seeds = ", ".join(f"[{a}, {b}]" for a, b in doc["replication_seeds"])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(doc["scenario"])}: simulation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{margin:1.5em 0}}</style></head>
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
