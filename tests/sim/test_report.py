"""`polybus sim report`: a self-contained page of readable SVG charts, each also written as a file."""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from polybus.cli.sim import sim_group
from polybus.sim import narrative
from polybus.sim.plot import Axis, Series, line_chart, linear_scale, log_scale, tick_label

CART = str(Path(__file__).resolve().parents[2] / "scenarios" / "shopping_cart.yaml")
SVG = "{http://www.w3.org/2000/svg}"
SLUGS = ["latency-cdf", "latency-tail", "backlog", "consistency-window", "cost"]


class _Refs(HTMLParser):
    """Collects src/href attributes: a self-contained page loads nothing from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the shopping cart under three provider profiles, written once for this module."""
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(
        sim_group,
        ["report", CART, "--out", str(out), "-r", "2", "--duration", "40", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    return out


def _charts(out: Path) -> dict[str, ET.Element]:
    page = (out / "index.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    slugs = re.findall(r'data-chart="([^"]+)"', page)
    assert len(svgs) == len(slugs)
    return {slug: ET.fromstring(svg) for slug, svg in zip(slugs, svgs, strict=True)}


def _series_colours(root: ET.Element) -> dict[str, str]:
    """{series name: colour} of every drawn polyline and bar (their <title> names them)."""
    out = {}
    marks = [*root.iter(f"{SVG}polyline"), *root.iter(f"{SVG}rect")]
    for mark in (m for m in marks if m.get("class") == "series"):
        title = mark.find(f"{SVG}title")
        assert title is not None and title.text
        out[title.text] = mark.get("stroke") or mark.get("fill") or ""
    return out


def test_report_page_is_self_contained_and_every_chart_has_data(report: Path) -> None:
    """index.html inlines five SVG charts, each drawing data; each is also a standalone .svg; nothing remote."""
    page = (report / "index.html").read_text(encoding="utf-8")
    charts = _charts(report)
    assert list(charts) == SLUGS
    for root in charts.values():
        drawn = list(root.iter(f"{SVG}polyline")) + list(root.iter(f"{SVG}rect"))
        assert drawn
        for line in root.iter(f"{SVG}polyline"):
            assert len(line.get("points", "").split()) >= 2
    refs = _Refs()
    refs.feed(page)
    assert sorted(refs.refs) == sorted(f"{slug}.svg" for slug in SLUGS)
    for slug in SLUGS:
        standalone = ET.fromstring((report / f"{slug}.svg").read_bytes())
        assert standalone.tag == f"{SVG}svg" and ET.tostring(standalone) == ET.tostring(
            charts[slug]
        )
    assert not list(report.glob("*.png"))


def test_each_run_keeps_one_distinct_colour_across_charts(report: Path) -> None:
    """request and event@<provider> are drawn in four different colours, the same in every chart."""
    charts = _charts(report)
    bars = _series_colours(charts["cost"])
    assert set(bars) == {"request", "event@aws", "event@azure", "event@gcp"}
    assert len(set(bars.values())) == len(bars)
    assert _series_colours(charts["backlog"]) == bars
    for slug in ("latency-cdf", "latency-tail", "consistency-window"):
        for name, colour in _series_colours(charts[slug]).items():
            assert colour == bars[name.split()[0]], (slug, name)


def test_legend_sits_below_every_curve(report: Path) -> None:
    """Each line chart's legend starts below the lowest point of the plot, so it covers no curve."""
    for slug, root in _charts(report).items():
        if slug == "cost":
            continue
        legend = root.find(f"{SVG}g[@class='legend']")
        assert legend is not None
        legend_top = min(float(t.get("y", "0")) for t in legend.iter(f"{SVG}text")) - 12
        lowest = max(
            float(xy.split(",")[1])
            for line in [*root.iter(f"{SVG}polyline"), *root.iter(f"{SVG}polygon")]
            for xy in line.get("points", "").split()
        )
        assert legend_top > lowest, slug


def test_latency_axis_is_logarithmic_with_readable_ticks(report: Path) -> None:
    """The latency CDF's x axis is labelled on a log scale, with 1-2-5 ticks in ms or s."""
    root = _charts(report)["latency-cdf"]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "latency (log scale)" in texts
    ticks = [t for t in texts if re.fullmatch(r"[\d.]+ m?s", t)]
    assert len(ticks) >= 3
    for tick in ticks:
        assert re.fullmatch(r"(1|2|5)0*(\.0*)? m?s|0\.(0*)(1|2|5) m?s", tick), tick


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (0.0, 37.5), (0.00107, 0.3), (3.0, 3.0), (12.0, 123456.0)]
)
def test_linear_ticks_are_whole_one_two_five_steps_covering_the_data(lo: float, hi: float) -> None:
    """Linear ticks step by 1, 2 or 5 times a power of ten and the range covers the data."""
    scale = linear_scale(lo, hi)
    assert scale.lo <= lo and scale.hi >= hi and 3 <= len(scale.ticks) <= 11
    step = scale.ticks[1] - scale.ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6
    assert all(math.isclose(b - a, step) for a, b in itertools.pairwise(scale.ticks))


@pytest.mark.parametrize(("lo", "hi"), [(0.00107, 0.3), (1e-4, 50.0), (1e-6, 1e3), (0.021, 0.029)])
def test_log_ticks_are_one_two_five_values_covering_the_data(lo: float, hi: float) -> None:
    """Log ticks are 1, 2 or 5 times a power of ten (or plain steps on a short range) and cover the data."""
    scale = log_scale(lo, hi)
    assert scale.log and scale.lo <= lo and scale.hi >= hi and len(scale.ticks) >= 2
    if hi / lo >= 4:
        for t in scale.ticks:
            mantissa = t / 10 ** math.floor(math.log10(t) + 1e-9)
            assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6, t


def test_tick_labels_use_units_and_no_float_noise() -> None:
    """Seconds read as s/ms/µs, large numbers as k/M, and 0.1 + 0.2 prints as 0.3."""
    assert [tick_label(v, "s") for v in (0.0, 0.0002, 0.15, 2.0)] == [
        "0",
        "200 µs",
        "150 ms",
        "2 s",
    ]
    assert [tick_label(v) for v in (0.1 + 0.2, 2500.0, 12000.0, 2.5e6)] == [
        "0.3",
        "2500",
        "12k",
        "2.5M",
    ]


def test_gaps_in_a_series_break_the_line() -> None:
    """None and NaN values split a series into separate polylines instead of joining across them."""
    series = Series("s", (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), (1.0, 2.0, None, 4.0, math.nan, 6.0))
    root = ET.fromstring(line_chart("gaps", Axis("x"), Axis("y"), [series]))
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len(line.get("points", "").split()) for line in lines] == [2]
    assert len(list(root.iter(f"{SVG}circle"))) == 4  # every point of a short series is dotted


def _doc(report: Path) -> dict[str, Any]:
    return dict(json.loads((report / "report.json").read_text(encoding="utf-8")))


def test_headline_is_computed_from_the_numbers(report: Path) -> None:
    """The page opens with the response ratio and the cheapest provider, both recomputed here from report.json."""
    doc = _doc(report)
    page = (report / "index.html").read_text(encoding="utf-8")
    runs = doc["runs"]
    request = runs["request"]["flows"]["checkout"]["latency"]["mean"]["mean"]
    event = runs["event@aws"]["flows"]["checkout"]["latency"]["mean"]["mean"]
    assert f"answers {request / event:.1f}x sooner than request" in page
    costs = {k.split("@")[1]: r["cost"]["total"] for k, r in runs.items() if "@" in k}
    cheapest = min(costs, key=costs.__getitem__)
    assert (
        f"{cheapest} is cheapest for the event topology at {narrative.dollars(costs[cheapest])}/month"
        in page
    )


def test_headline_follows_the_document_not_a_script() -> None:
    """Changing the numbers changes the sentences: slower event responses read 'later', a lone run costs on its provider."""
    summary = lambda v: {"mean": v, "halfwidth": 0.0}  # noqa: E731 - a one-line builder
    flow = lambda r, c: {"latency": {"mean": summary(r)}, "completion": {"mean": summary(c)}}  # noqa: E731
    doc = {"completed_replications": 2, "runs": {
        "sync": {"topology": "sync", "provider": "local", "flows": {"f": flow(0.1, 0.1)}, "topics": {}},
        "async": {"topology": "async", "provider": "gcp", "flows": {"f": flow(0.25, 0.5)},
                  "topics": {"t": {}}, "cost": {"total": 12.5}},
    }}  # fmt: skip
    lines = narrative.headline(doc)
    assert lines[0] == (
        "The async topology answers 2.5x later than sync (mean f response 250 ms vs 100 ms) "
        "and completes 5.0x later (mean completion 500 ms vs 100 ms)."
    )
    assert lines[1] == "The async topology's broker costs $12/month on gcp."


def test_bands_scenario_text_and_assumptions_are_on_the_page(report: Path) -> None:
    """Two replications draw 95% bands; the description, lesson and a sourced assumptions table are shown."""
    page = (report / "index.html").read_text(encoding="utf-8")
    charts = _charts(report)
    for slug in ("latency-cdf", "latency-tail", "backlog"):
        assert list(charts[slug].iter(f"{SVG}polygon")), slug
    assert "95% confidence intervals (Student t) over 2 independent replications" in page
    assert "Checkout behind an API gateway." in page
    assert "Event-based answers the user sooner but finishes the work later" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("Assumptions: published")[1], flags=re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    by_key = {(c[0], c[1]): c for c in cells if c}
    assert by_key[("aws", "publish_quota")][3] == "published"
    assert "eb-quota.html" in by_key[("aws", "publish_quota")][4]
    assert by_key[("gcp", "delivery_latency")][3] == "estimate"
    for caption in ("Utilisation per service", "Broker: throughput, throttling and cost"):
        assert caption in page


def test_tail_chart_spans_p90_to_p999_on_a_nines_axis(report: Path) -> None:
    """The tail view labels p90 ... p99.9, each nine the same width apart, latency on a log axis."""
    root = _charts(report)["latency-tail"]
    labels = {t.text: float(t.get("x", "0")) for t in root.iter(f"{SVG}text")}
    assert {"p90", "p99", "p99.9", "latency (log scale)"} <= set(labels)
    assert labels["p99"] - labels["p90"] == pytest.approx(labels["p99.9"] - labels["p99"], abs=1)


def test_one_replication_says_there_are_no_bands() -> None:
    """With one replication the report says why the charts have no confidence bands."""
    assert "no confidence interval can be computed" in narrative.confidence_note(
        {"completed_replications": 1}
    )
