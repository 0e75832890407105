"""Honest overload: busy time inside the window, flows in progress at the end, and flags."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from click.testing import CliRunner

from polybus.cli.sim import sim_group
from polybus.sim.loader import parse_scenario
from polybus.sim.output import dumps
from polybus.sim.runner import run_scenario
from tests.sim.helpers import exp, station

SIM = Path(__file__).resolve().parents[2] / "sim"


def _billing(rate: float, engine: str) -> dict:
    return {
        "name": "overload", "duration": 200.0, "warmup": 20.0, "replications": 2, "engine": engine,
        "workload": {"orders": {"rate": rate}},
        "topologies": {"one": {"entry": {"orders": "billing"},
                               "services": {"billing": {"workers": 1, "service_time": exp(0.5)}}}},
    }  # fmt: skip


def test_station_at_twice_capacity_is_flagged_and_reads_full_utilisation() -> None:
    """Offered 2x capacity: utilisation >= 99% on both engines, most flows not completed, and a flag naming the station."""
    for engine in ("fast", "simpy"):
        doc = run_scenario(parse_scenario(_billing(4.0, engine)), workers=1)
        run = doc.runs["one"]
        billing, flow = run.services["billing"], run.flows["orders"]
        assert billing.utilisation.value >= 0.99, engine
        assert flow.not_completed_rate.value > 0.4 and flow.in_progress.value > 100
        assert flow.oldest_in_progress.value > 60
        assert flow.success_rate.value < 0.6
        (flag,) = [o for o in run.overload if o.reason == "offered load"]
        assert flag.where == "billing" and flag.capacity == 1.0 and 1.8 < (flag.offered or 0) < 2.2
        assert flag.message.startswith("billing is overloaded: offered 2.0, capacity 1.0: ")
        assert flag.message.endswith("response figures are not steady-state")
        assert any(o.reason == "growing backlog" for o in run.overload)
        data = json.loads(dumps(doc))
        assert data["runs"]["one"]["overload"][0]["message"] == flag.message


def test_a_stable_station_is_not_flagged() -> None:
    """At rho = 0.5 nothing is flagged, few flows are unfinished and utilisation is about 0.5."""
    doc = run_scenario(parse_scenario(_billing(1.0, "fast")), workers=1)
    run = doc.runs["one"]
    assert run.overload == ()
    assert 0.4 < run.services["billing"].utilisation.value < 0.6
    assert run.flows["orders"].not_completed_rate.value < 0.02


def test_utilisation_counts_visits_straddling_warmup_and_end() -> None:
    """Deterministic 10 s visits arriving faster than served keep the worker busy all through a window that cuts visits at both edges."""
    sc = station(0.5, 10.0, duration=105.0, warmup=15.0)
    for engine in ("fast", "simpy"):
        doc = run_scenario(parse_scenario({**sc.raw, "engine": engine}), replications=1, workers=1)
        assert doc.runs["one"].services["s"].utilisation.value > 0.99, engine


def test_overload_is_shown_in_the_terminal_tables(tmp_path: Path) -> None:
    """`sim run` prints the overload sentence and marks the station OVERLOADED."""
    import yaml

    path = tmp_path / "o.yaml"
    path.write_text(yaml.safe_dump(_billing(4.0, "fast")), encoding="utf-8")
    wide = CliRunner().invoke(sim_group, ["run", str(path), "--workers", "1"], env={"COLUMNS": "250"})
    assert "OVERLOADED" in wide.output and "GROWING" in wide.output
    result = CliRunner().invoke(sim_group, ["run", str(path), "--workers", "1"], env={"COLUMNS": "100"})
    assert max(len(line) for line in result.output.splitlines()) <= 100  # tables fit the terminal
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "billing is overloaded: offered 2.0, capacity 1.0" in flat


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("polybus.sim.")
        ):
            out.add(node.module.removeprefix("polybus.sim."))
        elif isinstance(node, ast.Import):
            out |= {
                a.name.removeprefix("polybus.sim.")
                for a in node.names
                if a.name.startswith("polybus.sim.")
            }
    return out


def test_no_import_cycle_in_the_simulator() -> None:
    """The import graph of sim/ (including imports inside functions) has no cycle: runner and dask_backend meet only in executors."""
    graph = {p.stem: _imports(p) for p in SIM.glob("*.py")}
    assert "runner" not in graph["dask_backend"] and "executors" in graph["dask_backend"]

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, " -> ".join((*trail, node))
        for nxt in graph.get(node, ()):
            visit(nxt, (*trail, node))

    for module in graph:
        visit(module, ())
