"""The ``polybus sim`` commands through click's CliRunner, and in a real process for missing extras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from polybus.cli.sim import sim_group

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CART = str(SCENARIOS / "shopping_cart.yaml")


def test_run_json_same_seed_same_numbers(tmp_path: Path) -> None:
    """`sim run --json` twice with one seed prints identical documents and writes run.json under --out."""
    args = ["run", CART, "--seed", "3", "-r", "2", "--duration", "30", "--workers", "1", "--json"]
    first = CliRunner().invoke(sim_group, [*args, "--out", str(tmp_path)])
    second = CliRunner().invoke(sim_group, args)
    assert first.exit_code == 0, first.output
    a, b = json.loads(first.output), json.loads(second.output)
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b
    assert a["seed"] == 3 and a["replication_seeds"] == [[3, 0], [3, 1]]
    assert json.loads((tmp_path / "run.json").read_text())["schema"] == "polybus.sim/1"


def test_run_prints_tables() -> None:
    """Without --json the terminal gets the latency, services, broker and consistency tables."""
    result = CliRunner().invoke(
        sim_group, ["run", CART, "-r", "2", "--duration", "30", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    for title in (
        "End-to-end latency",
        "Services",
        "Backlog over time",
        "Broker",
        "Consistency window",
    ):
        assert title in result.output


def test_compare_providers_shows_cost() -> None:
    """`sim compare --providers aws,azure,gcp` reports one run per topology and provider, with monthly cost."""
    result = CliRunner().invoke(
        sim_group,
        ["compare", CART, "--providers", "aws,azure,gcp", "-r", "2", "--duration", "20", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {"event@aws", "event@azure", "event@gcp", "request"} == set(doc["runs"])
    costs = {p: doc["runs"][f"event@{p}"]["cost"]["total"] for p in ("aws", "azure", "gcp")}
    assert all(c > 0 for c in costs.values())


def test_invalid_scenario_is_a_clean_error(tmp_path: Path) -> None:
    """A broken file exits 1 with the file, path and rule, not a traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "workload: {x: {rate: 1}}\ntopologies: {t: {entry: {x: s}, services: {s: {workers: 0, service_time: 1}}}}\n"
    )
    result = CliRunner().invoke(sim_group, ["run", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "topologies.t.services.s.workers" in result.output


def test_sweep_grid_table_and_chart(tmp_path: Path) -> None:
    """`sim sweep --param` runs each value, tabulates the metric and writes an SVG chart."""
    result = CliRunner().invoke(
        sim_group,
        ["sweep", CART, "--param", "workload.checkout.rate=10,60", "--topology", "request", "-r", "2",
         "--duration", "30", "--workers", "1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "sweep.json").read_text())
    p99 = [p["metric"]["request"]["mean"] for p in doc["points"]]
    assert p99[1] > p99[0]
    assert "<polyline" in (tmp_path / "sweep.svg").read_text()


def test_unknown_provider_and_topology_are_clean_errors() -> None:
    """An unknown --providers or --topology name exits 1 naming the valid choices."""
    bad_provider = CliRunner().invoke(
        sim_group, ["compare", CART, "--providers", "aws,nope", "-r", "1"]
    )
    assert bad_provider.exit_code == 1 and "must be one of aws, azure, gcp" in bad_provider.output
    bad_topology = CliRunner().invoke(sim_group, ["run", CART, "--topology", "batch", "-r", "1"])
    assert bad_topology.exit_code == 1 and "must be one of request, event" in bad_topology.output


# Runs the polybus CLI in a fresh interpreter where the comma-separated
# top-level packages of argv[1] cannot be imported, as if not installed.
WITHOUT = """
import sys

class Uninstalled:
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Uninstalled(sys.argv.pop(1).split(",")))
from polybus.cli.main import main
main()
"""


def _polybus_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_sweep_on_a_scheduler_without_dask_is_one_line_before_simulating(tmp_path: Path) -> None:
    """Without distributed, `sim sweep --scheduler` exits 1 with one line and the pip command, having simulated nothing."""
    done = _polybus_without(
        "distributed", "sim", "sweep", CART, "--param", "workload.checkout.rate=10,20",
        "--scheduler", "tcp://127.0.0.1:9", "-r", "1", "--duration", "5", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: sim sweep --scheduler (a Dask cluster) needs distributed, which is not installed: "
        "pip install 'polybus[sim]'"
    ]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not list(tmp_path.iterdir())


def test_report_needs_no_matplotlib(tmp_path: Path) -> None:
    """With matplotlib unimportable, `sim report` writes the page and its SVG charts and exits 0."""
    done = _polybus_without(
        "matplotlib", "sim", "report", CART, "--out", str(tmp_path), "-r", "1", "--duration", "20",
        "--workers", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip() == f"wrote {tmp_path / 'index.html'}"
    assert "<svg" in (tmp_path / "index.html").read_text(encoding="utf-8")
    assert {p.name for p in tmp_path.glob("*.svg")} >= {
        "latency-cdf.svg", "backlog.svg", "consistency-window.svg", "cost.svg"
    }  # fmt: skip
