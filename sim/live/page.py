"""The `sim live --out` page, in the report's style: simulated and live on the same charts.

Both runs of each topology go into one run document (keys ``<topology>
simulated`` and ``<topology> live``), so the report's charts (sim.report)
draw their latency CDFs on one chart, one colour per run; the page adds the
comparison table (simulated, live, relative error per figure) and the
report's own tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from html import escape
from pathlib import Path

from polybus.sim.live.compare import Comparison
from polybus.sim.report import RENDER_CHECK, STYLE, XML_DECLARATION, figures, tables
from polybus.sim.results import RunDocument


def combined(comparisons: Sequence[Comparison]) -> RunDocument:
    """One run document holding the simulated and the live run of every compared topology."""
    first = comparisons[0].document()
    runs = {k: v for c in comparisons for k, v in c.document().runs.items()}
    return replace(first, runs=runs, tasks_total=len(runs), tasks_completed=len(runs))


def _cell(v: float | None, metric: str) -> str:
    if v is None:
        return "-"
    if ".utilisation" in metric or metric.endswith("success_rate"):
        return f"{v * 100:.2f}%"
    if ".latency." in metric or ".completion." in metric or ".window." in metric:
        return f"{v * 1000:.2f}"
    return f"{v:.3g}"


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    """Every figure simulated and live with its relative error (latencies in ms)."""
    body = "".join(
        "<tr>" + f'<td class="l">{escape(c.topology)}</td><td class="l">{escape(r.metric)}</td>'
        + f'<td class="n">{_cell(r.simulated, r.metric)}</td><td class="n">{_cell(r.live, r.metric)}</td>'
        + f'<td class="n">{"-" if r.relative_error is None else f"{r.relative_error * 100:+.1f}%"}</td></tr>'
        for c in comparisons for r in c.rows
    )  # fmt: skip
    head = "".join(
        f"<th>{h}</th>" for h in ("topology", "figure", "simulated", "live", "relative error")
    )
    return (
        "<table><caption>Simulated against live (latencies and windows in ms; relative error = "
        f"(live - simulated) / simulated)</caption><thead><tr>{head}</tr></thead><tbody>{body}"
        "</tbody></table>"
    )


def write_page(comparisons: Sequence[Comparison], out_dir: str | Path) -> Path:
    """Write index.html, one SVG per chart and live.json into `out_dir`; return the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = combined(comparisons).to_json()
    figs = figures(doc)
    for chart, _ in figs:
        (out / f"{chart.slug}.svg").write_text(XML_DECLARATION + chart.svg + "\n", encoding="utf-8")
    c0 = comparisons[0]
    note = (
        f"{escape(c0.file)}: seed {c0.seed}, {c0.duration:g} s live and simulated (warm-up "
        f"{c0.warmup:g} s), arrival rates x{c0.rate_scale:g}, provider {escape(c0.provider)}"
        + (f", simulated with the calibrated profile {escape(c0.profile)}" if c0.profile else "")
        + f". The live run drew the simulation's replication-0 random streams; the event "
        f"loop's sleep overshoot ({c0.sleep_bias * 1e6:.0f} µs) was subtracted from every sleep."
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(c0.scenario)}: simulation against a live run</title>
<style>{STYLE}</style></head>
<body>
<h1>{escape(c0.scenario)}: simulated and live</h1>
<p class="note">{note}</p>
{comparison_table(comparisons)}
<h2>Charts</h2>
{"".join(f for _, f in figs)}
<h2>Tables</h2>
{"".join(tables(doc))}
<script>{RENDER_CHECK}</script>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    (out / "live.json").write_text(
        json.dumps(document(comparisons), indent=2, allow_nan=False), encoding="utf-8"
    )
    return path


def document(comparisons: Sequence[Comparison]) -> dict[str, object]:
    """The ``--json`` document: settings, every topology's comparison rows, and each run."""
    c0 = comparisons[0]
    return {
        "schema": "polybus.sim.live/1", "scenario": c0.scenario, "file": c0.file,
        "provider": c0.provider, "seed": c0.seed, "duration": c0.duration, "warmup": c0.warmup,
        "rate_scale": c0.rate_scale, "profile": c0.profile,
        "comparison": [
            {"topology": c.topology, **row}
            for c in comparisons for row in c.to_json()["comparison"]
        ],
        "topologies": {c.topology: c.to_json() for c in comparisons},
    }  # fmt: skip
