"""The report renders in headless Chromium (Debian's chromium; .ci/debian-packages must list it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from polybus.cli.sim import sim_group

CART = str(Path(__file__).resolve().parents[2] / "scenarios" / "shopping_cart.yaml")


def test_every_chart_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Chromium loads the page offline: five charts drawn, no labels overlapping, no text on a plot."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is required: add 'chromium' to .ci/debian-packages"
    result = CliRunner().invoke(
        sim_group,
        ["report", CART, "--out", str(tmp_path), "-r", "2", "--duration", "40", "--workers", "1"],
    )
    assert result.exit_code == 0, result.output
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--user-data-dir=" + str(tmp_path / "profile"), "--dump-dom", (tmp_path / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    rendered = re.search(r'data-charts-rendered="(\d+)"', dom)
    assert rendered, dom[:500]
    assert int(rendered.group(1)) == len(re.findall(r"<figure data-chart=", dom)) == 5
    clashes = re.search(r'data-chart-clashes="(\d+)"', dom)
    assert clashes and clashes.group(1) == "0", (
        "labels overlap each other or a legend covers a curve"
    )
    on_plot = re.search(r'data-text-on-plot="(\d+)"', dom)
    assert on_plot and on_plot.group(1) == "0", "a label (other than a bar's value) lies on a plot"
