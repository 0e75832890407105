"""`polybus sim from-traces`: the demo's topology rebuilt from its spans, and simulated."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.cli.demo import run_traced
from polybus.cli.main import cli
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.core.tracing import install
from polybus.core.tracing.records import SpanRecord
from polybus.sim.from_traces import derive, from_traces
from polybus.sim.runner import run_scenario

ORDERS = 6


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spans of six demo orders on the memory bus, as `polybus demo --trace-out` writes them."""
    pm = plugin_manager(load_entrypoints=False)
    tracing = install(pm)
    with Bus(MemoryBus(), hooks=pm.hook) as bus:
        flow, records = run_traced(bus, tracing, orders=ORDERS, timeout=20.0)
    assert len(flow.notified) == ORDERS
    path = tmp_path_factory.mktemp("spans") / "demo.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


def test_rebuilds_the_demo_topology(spans_file: Path) -> None:
    """Five subscriptions as services, event types as topics, the checkout entering at cart."""
    doc, sc = from_traces(spans_file)
    top = sc.topologies["event"]
    assert dict(top.entry) == {"checkout": "cart"}
    consumes = {name: set(s.consumes) for name, s in top.services.items()}
    assert consumes == {
        "cart": set(),
        "demo-orders": {"com.shop.cart.checked_out"},
        "demo-inventory": {"com.shop.order.placed"},
        "demo-payments": {"com.shop.order.placed"},
        "demo-confirmations": {"com.shop.inventory.reserved", "com.shop.payment.charged"},
        "demo-notifications": {"com.shop.order.confirmed"},
    }
    pubs = {name: {(p.topic, p.p) for p in s.publishes} for name, s in top.services.items()}
    assert pubs["cart"] == {("com.shop.cart.checked_out", 1.0)}
    assert pubs["demo-orders"] == {("com.shop.order.placed", 1.0)}
    assert pubs["demo-confirmations"] == {("com.shop.order.confirmed", 0.5)}  # one of two inputs
    assert pubs["demo-notifications"] == set()
    assert doc["provider"] == "local"
    assert sc.workloads[0].rate > 0


def test_rebuilt_scenario_simulates_every_order_to_notification(spans_file: Path) -> None:
    """The rebuilt scenario runs: each checkout completes after the notification is handled."""
    _, sc = from_traces(spans_file)
    slower = tuple(replace(w, rate=50.0) for w in sc.workloads)  # the demo's burst is too fast
    doc = run_scenario(
        replace(sc, duration=4.0, warmup=0.4, workloads=slower), replications=1, workers=1, seed=3
    )
    run = doc.runs["event"]
    assert run.flows["checkout"].success_rate.value > 0.95  # the rest still in progress at the end
    assert run.topics["com.shop.order.confirmed"].published.value > 0
    assert run.flows["checkout"].completion.p50.value > run.flows["checkout"].latency.p50.value


def test_cli_writes_a_loadable_scenario(spans_file: Path, tmp_path: Path) -> None:
    """`sim from-traces SPANS --out FILE` writes YAML that `sim run` accepts."""
    out = tmp_path / "demo.yaml"
    result = CliRunner().invoke(cli, ["sim", "from-traces", str(spans_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 service(s), 5 topic(s), 1 flow(s)" in result.output
    assert yaml.safe_load(out.read_text())["topologies"]["event"]["entry"] == {"checkout": "cart"}
    run = CliRunner().invoke(
        cli,
        ["sim", "run", str(out), "--duration", "2", "-r", "1", "--workers", "1", "--json",
         "--set", "workload.checkout.rate=50"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output


def test_spans_without_an_entry_are_an_error() -> None:
    """Spans where nothing publishes from a root give a ConfigError, not a traceback."""
    lone = SpanRecord("a" * 32, "b" * 16, None, "work", "INTERNAL", "s", 0, 5)
    with pytest.raises(ConfigError, match="nothing enters"):
        derive([lone])
