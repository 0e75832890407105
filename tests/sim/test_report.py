"""`polybus sim report`: a self-contained page whose every chart has data, plus the PNGs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from polybus.cli.sim import sim_group

CART = str(Path(__file__).resolve().parents[2] / "scenarios" / "shopping_cart.yaml")
SVG = "{http://www.w3.org/2000/svg}"


class _Refs(HTMLParser):
    """Collects src/href attributes: a self-contained page loads nothing from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


def test_report_page_is_self_contained_and_every_chart_has_data(tmp_path: Path) -> None:
    """index.html inlines four SVG charts, each drawing data; the PNGs are real images; nothing remote."""
    result = CliRunner().invoke(
        sim_group,
        ["report", CART, "--out", str(tmp_path), "-r", "2", "--duration", "40", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    slugs = re.findall(r'data-chart="([^"]+)"', page)
    assert slugs == ["latency-cdf", "backlog", "consistency-window", "cost"]
    assert len(svgs) == 4
    for svg in svgs:
        root = ET.fromstring(svg)
        drawn = root.findall(f"{SVG}polyline") + root.findall(f"{SVG}rect")
        assert drawn, svg[:200]
        for line in root.findall(f"{SVG}polyline"):
            assert len(line.get("points", "").split()) >= 2
    refs = _Refs()
    refs.feed(page)
    assert refs.refs and all(r.endswith(".png") and "://" not in r for r in refs.refs)
    for slug in slugs:
        assert (tmp_path / f"{slug}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
