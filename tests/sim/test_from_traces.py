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
from polybus.sim.live import prepare, run_live
from polybus.sim.loader import load_scenario, parse_scenario
from polybus.sim.runner import run_scenario

ORDERS = 6
CART = Path(__file__).resolve().parents[2] / "scenarios" / "shopping_cart.yaml"


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
    assert pubs["demo-confirmations"] == {("com.shop.order.confirmed", 1.0)}  # once per order
    assert [n for n, s in top.services.items() if s.join] == ["demo-confirmations"]
    assert doc["topologies"]["event"]["services"]["demo-confirmations"]["join"] == "all"
    assert pubs["demo-notifications"] == set()
    assert doc["provider"] == "local"
    assert sc.workloads[0].rate > 0


def test_rebuilt_services_hold_their_worker_after_publishing(spans_file: Path) -> None:
    """Publishing services get the span's time after their last publish as settle_time."""
    doc, sc = from_traces(spans_file)
    services = doc["topologies"]["event"]["services"]
    for name in ("demo-orders", "demo-inventory", "demo-payments"):
        assert "settle_time" in services[name], name  # the ack after the publish returned
        assert sc.topologies["event"].services[name].settle_time is not None
    assert "settle_time" not in services["demo-notifications"]  # publishes nothing


def test_rebuilt_scenario_simulates_every_order_to_notification(spans_file: Path) -> None:
    """The rebuilt scenario runs: each checkout completes after the notification is handled."""
    _, sc = from_traces(spans_file)
    # the demo's burst is too fast; 20/s leaves room for a slow outlier among the six orders'
    # samples, now that a visit also holds its worker for its settle time
    slower = tuple(replace(w, rate=20.0) for w in sc.workloads)
    doc = run_scenario(
        replace(sc, duration=10.0, warmup=1.0, workloads=slower), replications=1, workers=1, seed=3
    )
    run = doc.runs["event"]
    assert run.flows["checkout"].success_rate.value > 0.95  # the rest still in progress at the end
    confirmed = run.topics["com.shop.order.confirmed"].published.value
    placed = run.topics["com.shop.order.placed"].published.value
    assert placed > 50
    assert abs(confirmed - placed) <= 3  # the join: one confirmation per order, not one per input
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


def test_rebuilt_topics_carry_the_measured_broker_latencies(spans_file: Path) -> None:
    """Each topic gets the publish and delivery latency its spans show (few samples: empirical)."""
    doc, sc = from_traces(spans_file)
    topics = doc["topologies"]["event"]["topics"]
    assert set(topics) == {
        "com.shop.cart.checked_out", "com.shop.order.placed", "com.shop.inventory.reserved",
        "com.shop.payment.charged", "com.shop.order.confirmed",
    }  # fmt: skip
    for spec in topics.values():
        assert spec["publish_latency"]["dist"] == "empirical"
        assert 0 < len(spec["publish_latency"]["samples"]) <= ORDERS * 2
        assert all(x > 0 for x in spec["delivery_latency"]["samples"])
    assert set(sc.topologies["event"].topics) == set(topics)


def test_unknown_fit_is_an_error(spans_file: Path) -> None:
    """`fit` other than lognormal or empirical is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="fit"):
        from_traces(spans_file, fit="normal")


def test_spans_without_an_entry_are_an_error() -> None:
    """Spans where nothing publishes from a root give a ConfigError, not a traceback."""
    lone = SpanRecord("a" * 32, "b" * 16, None, "work", "INTERNAL", "s", 0, 5)
    with pytest.raises(ConfigError, match="nothing enters"):
        derive([lone])


def _span(
    i: int, sid: str, parent: str | None, kind: str, start: int, end: int, **attrs: str
) -> SpanRecord:
    """One span of order `i` (its own trace); ids are `sid` / `parent` suffixed by the order."""
    t = i * 1_000_000_000
    up = None if parent is None else f"{parent}{i:014x}"
    return SpanRecord(
        f"{i:032x}",
        f"{sid}{i:014x}",
        up,
        f"{kind.lower()} {sid}",
        kind,
        sid,
        t + start,
        t + end,
        dict(attrs),
    )


def _two_input_spans(publish_on_each: bool, orders: int = 20) -> list[SpanRecord]:
    """Root -> a and b in parallel -> m consuming both; m publishes on its last input or on each."""
    sub, kind = "messaging.destination.subscription.name", "cloudevents.event_type"
    out: list[SpanRecord] = []
    for i in range(orders):
        out.append(_span(i, "r0", None, "INTERNAL", 0, 10))
        out.append(_span(i, "p0", "r0", "PRODUCER", 1, 2, **{kind: "go"}))
        for name, end in (("a1", 20), ("b1", 40)):
            out.append(_span(i, name, "p0", "CONSUMER", 3, end, **{sub: name}))
            out.append(
                _span(i, f"x{name}", name, "PRODUCER", end - 1, end, **{kind: f"{name}-done"})
            )
        for name, parent, start in (("m1", "xa1", 21), ("m2", "xb1", 41)):
            out.append(_span(i, name, parent, "CONSUMER", start, start + 5, **{sub: "m"}))
            if publish_on_each or name == "m2":
                out.append(
                    _span(i, f"x{name}", name, "PRODUCER", start + 4, start + 5, **{kind: "done"})
                )
    return out


def test_join_detected_only_when_one_visit_per_flow_publishes() -> None:
    """Two inputs per trace and one publish after the last: `join: all`; a publish per input: none."""
    joined = derive(_two_input_spans(publish_on_each=False))["topologies"]["event"]["services"]
    assert joined["m"]["join"] == "all"
    assert joined["m"]["publish"] == ["done"]
    assert joined["m"]["consumes"] == ["a1-done", "b1-done"]
    each = derive(_two_input_spans(publish_on_each=True))["topologies"]["event"]["services"]
    assert "join" not in each["m"]
    assert each["m"]["publish"] == ["done"]  # p = 1 per delivery


@pytest.fixture(scope="module")
def request_spans() -> tuple[SpanRecord, ...]:
    """The spans of the shopping cart's request topology run live over loopback HTTP."""
    sc = prepare(load_scenario(CART), provider="local", duration=2.5, rate_scale=0.2)
    return run_live(sc, "request", transport="http").spans


def test_live_http_calls_are_client_and_server_spans(request_spans: tuple[SpanRecord, ...]) -> None:
    """Each call is a CLIENT span of the caller whose child SERVER span (via traceparent) is the callee's."""
    by_id = {s.span_id: s for s in request_spans}
    servers = [s for s in request_spans if s.kind == "SERVER"]
    assert servers
    for server in servers:
        client = by_id[server.parent_span_id or ""]
        assert client.kind == "CLIENT"
        assert client.trace_id == server.trace_id
        assert client.attributes["polybus.sim.target"] == server.service
        assert client.start_ns <= server.start_ns <= server.end_ns <= client.end_ns
    assert {s.service for s in servers} == {"cart", "inventory", "billing"}


def test_rebuilds_the_request_topology_from_calls(request_spans: tuple[SpanRecord, ...]) -> None:
    """CLIENT/SERVER pairs become the request topology's calls: cart, then inventory and billing in parallel."""
    doc = derive(request_spans, "cart-request")
    sc = parse_scenario(doc)
    top = sc.topologies["request"]
    assert dict(top.entry) == {"checkout": "gateway"}
    calls = [(c.targets, c.join) for c in top.services["gateway"].calls]
    assert calls == [(("cart",), 1), (("billing", "inventory"), 2)]
    assert set(top.services) == {"gateway", "cart", "inventory", "billing"}
    assert not any(s.calls for n, s in top.services.items() if n != "gateway")
    # the gateway's own work excludes the time its worker waited for its calls
    gateway = top.services["gateway"].service_time.mean
    assert gateway < top.services["cart"].service_time.mean


def test_from_traces_places_every_service_on_the_traced_host(spans_file: Path) -> None:
    """With host_cpus, every service shares one host and its times are demands (<= durations)."""
    plain, _ = from_traces(spans_file)
    doc, sc = from_traces(spans_file, cpus=1)
    top = sc.topologies["event"]
    assert {h.name: h.cpus for h in top.hosts.values()} == {"host": 1}
    assert {s.host for s in top.services.values()} == {"host"}
    for name, spec in doc["topologies"]["event"]["services"].items():
        shared_s = spec["service_time"]["samples"]  # six orders: empirical samples
        alone_s = plain["topologies"]["event"]["services"][name]["service_time"]["samples"]
        assert sum(shared_s) <= sum(alone_s) * (1 + 1e-9)


def test_cli_host_cpus_writes_a_shared_host(spans_file: Path, tmp_path: Path) -> None:
    """`--host-cpus 1` writes one host of one CPU that every service names; 0 is refused."""
    out = tmp_path / "demo.yaml"
    result = CliRunner().invoke(
        cli, ["sim", "from-traces", str(spans_file), "--out", str(out), "--host-cpus", "1"]
    )
    assert result.exit_code == 0, result.output
    top = yaml.safe_load(out.read_text())["topologies"]["event"]
    assert top["hosts"] == {"host": {"cpus": 1, "in_process_bus": True}}  # the memory bus
    assert {spec["host"] for spec in top["services"].values()} == {"host"}
    bad = CliRunner().invoke(cli, ["sim", "from-traces", str(spans_file), "--host-cpus", "0"])
    assert bad.exit_code == 2 and "--host-cpus" in bad.output
