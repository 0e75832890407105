"""`polybus sim live`: a scenario run live on a real bus, set beside its simulation (structure, not timing)."""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from polybus.adapters.local.memory import MemoryBus
from polybus.cli.main import cli
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.sim.calibrate import calibrate
from polybus.sim.from_traces import derive
from polybus.sim.live import Comparison, LiveRun, compare, prepare, run_live
from polybus.sim.live.compare import relative_error, scale_workload
from polybus.sim.loader import load_scenario
from polybus.sim.topology import Workload

ROOT = Path(__file__).resolve().parents[2]
CART = ROOT / "scenarios" / "shopping_cart.yaml"
PROFILE = ROOT / "scenarios" / "consistency_window.yaml"


@pytest.fixture
def bus() -> Iterator[Bus]:
    """A Bus on a fresh in-memory local adapter."""
    with Bus(MemoryBus()) as b:
        yield b


@pytest.fixture(scope="module")
def event_live() -> tuple[Comparison, LiveRun]:
    """The shopping cart's event topology, 3 s live at a quarter of its rate, and its simulation."""
    sc = prepare(load_scenario(CART), provider="local", duration=3.0, rate_scale=0.25)
    with Bus(MemoryBus()) as b:
        run = run_live(sc, "event", bus=b)
    return compare(sc, run, rate_scale=0.25), run


@pytest.fixture(scope="module")
def event_run(event_live: tuple[Comparison, LiveRun]) -> Comparison:
    """The comparison of the event run."""
    return event_live[0]


def _rows(c: Comparison) -> dict[str, tuple[float | None, float | None, float | None]]:
    return {r.metric: (r.simulated, r.live, r.relative_error) for r in c.rows}


def test_event_comparison_has_every_figure(event_run: Comparison) -> None:
    """Latency, completion, utilisation, window and backlog rows exist for the event topology."""
    rows = _rows(event_run)
    for q in ("mean", "p50", "p95", "p99"):
        assert f"flows.checkout.latency.{q}" in rows
        assert f"flows.checkout.completion.{q}" in rows
        assert f"read_models.order_status.window.{q}" in rows
    for s in ("gateway", "cart", "inventory", "billing", "order_status"):
        assert f"services.{s}.utilisation" in rows
    assert "backlog.in_flight.mean" in rows
    assert all(v[1] is not None and v[1] > 0 for k, v in rows.items() if ".latency." in k)


def test_relative_errors_are_computed_from_the_two_figures(event_run: Comparison) -> None:
    """Each row's relative error is (live - simulated) / simulated."""
    checked = 0
    for r in event_run.rows:
        if r.simulated and r.live is not None:
            assert r.relative_error == pytest.approx((r.live - r.simulated) / r.simulated)
            checked += 1
    assert checked >= 20


def test_live_run_sees_the_simulated_arrivals(event_run: Comparison) -> None:
    """Same seed, same streams: the live run starts exactly the flows the simulation started."""
    sim = event_run.simulated.flows["checkout"].count.value
    live = event_run.live.flows["checkout"].count.value
    assert live == sim > 0
    assert event_run.live.engine == "live"
    assert event_run.live.topics["order-placed"].published.value > 0


def test_completion_waits_for_every_subscriber(event_run: Comparison) -> None:
    """Live completion (all four deliveries handled) is later than the response (the publish)."""
    live = event_run.live.flows["checkout"]
    assert live.completion.p50.value > live.latency.p50.value


def test_from_traces_rebuilds_the_live_topology(event_live: tuple[Comparison, LiveRun]) -> None:
    """The live run's own spans rebuild the scenario it ran: entry, consumers, publications."""
    doc = derive(event_live[1].spans)
    top = doc["topologies"]["event"]
    topic = "dev.polybus.sim.order-placed"
    assert top["entry"] == {"checkout": "gateway"}
    assert top["services"]["gateway"]["publish"] == [topic]
    consumers = {n for n, s in top["services"].items() if s.get("consumes") == [topic]}
    assert consumers == {"cart", "inventory", "billing", "order_status"}
    assert doc["provider"] == "local"


def test_request_topology_runs_over_http() -> None:
    """The request topology's calls go to loopback HTTP services; figures are measured."""
    sc = prepare(load_scenario(PROFILE), provider="local", duration=2.5, rate_scale=0.2)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    run = run_live(sc, "request", transport="http")
    # the HTTP services leave the process's handlers alone (uvicorn's own, put back out of
    # order by several servers, once made this process and its forks ignore SIGTERM)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    c = compare(sc, run, rate_scale=0.2)
    rows = _rows(c)
    assert run.transport == "http"
    assert rows["services.search_indexer.utilisation"][1] > 0  # type: ignore[operator]
    assert rows["flows.save_profile.latency.p50"][1] > 0  # type: ignore[operator]
    assert c.live.flows["save_profile"].count.value == c.simulated.flows["save_profile"].count.value


def test_relative_error_is_undefined_without_a_simulated_figure() -> None:
    """None when either side is missing, not finite, or the simulated figure is 0."""
    assert relative_error(2.0, 3.0) == pytest.approx(0.5)
    assert relative_error(0.0, 1.0) is None
    assert relative_error(None, 1.0) is None
    assert relative_error(1.0, math.nan) is None


def test_rate_scale_scales_rates_and_populations() -> None:
    """Poisson rates and periodic device counts are both multiplied."""
    assert scale_workload(Workload("f", "poisson", rate=40.0), 0.5).rate == 20.0
    assert scale_workload(Workload("f", "periodic", devices=1000, period=60), 0.1).devices == 100


def test_prepare_rejects_a_bad_rate_scale() -> None:
    """A non-positive rate scale is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="rate_scale"):
        prepare(load_scenario(CART), provider="local", rate_scale=0.0)


def test_cli_live_json_page_and_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sim live --json --out --trace-out`: comparison rows, a page with both CDFs, span lines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYBUS_CONFIG", raising=False)
    monkeypatch.delenv("POLYBUS_PROVIDER", raising=False)
    spans = tmp_path / "spans.jsonl"
    result = CliRunner().invoke(
        cli,
        ["sim", "live", str(CART), "--topology", "event", "--duration", "2.5", "--rate-scale",
         "0.5", "--json", "--out", str(tmp_path / "out"), "--trace-out", str(spans)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == "polybus.sim.live/1"
    row = next(r for r in doc["comparison"] if r["metric"] == "flows.checkout.latency.p50")
    assert set(row) == {"topology", "metric", "simulated", "live", "relative_error"}
    page = (tmp_path / "out" / "index.html").read_text()
    cdf = (tmp_path / "out" / "latency-cdf.svg").read_text()
    assert "event simulated" in cdf and "event live" in cdf
    assert "flows.checkout.latency.p50" in page
    lines = [json.loads(line) for line in spans.read_text().splitlines()]
    assert {line["kind"] for line in lines} == {"INTERNAL", "PRODUCER", "CONSUMER"}
    cal = calibrate(spans)  # the live run's own spans calibrate the profile
    assert cal.publish.n == sum(line["kind"] == "PRODUCER" for line in lines)
    consumers = sum(line["kind"] == "CONSUMER" for line in lines)
    assert 0 < cal.delivery.n + cal.skipped_queued <= consumers  # a publish cut by the end: none


def test_cli_live_unknown_topology_suggests(tmp_path: Path) -> None:
    """A misspelt --topology is one error line with a did-you-mean, before anything runs."""
    result = CliRunner().invoke(cli, ["sim", "live", str(CART), "--topology", "evnt"])
    assert result.exit_code != 0
    assert "did you mean 'event'" in result.output
    assert "Traceback" not in result.output
