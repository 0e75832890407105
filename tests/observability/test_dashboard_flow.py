"""The dashboard's flow view and trace waterfall: span sources, the graph, and the page in Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from click.testing import CliRunner

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.cli.demo import order_trace, run_traced
from polybus.cli.main import cli
from polybus.core.bus import Bus
from polybus.core.dashboard.flow import flow_graph, latest_traces, trace_rows
from polybus.core.dashboard.server import Dashboard, DashboardServer
from polybus.core.errors import ValidationError
from polybus.core.events import new_event
from polybus.core.tracing import install
from polybus.core.tracing.export import JsonLinesExporter, JsonLinesSource, SpanRecorder
from polybus.core.tracing.memory import memory_tracing
from polybus.core.tracing.records import SpanRecord, from_json
from tests.observability.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _playwright

SERVICES = {"cart", "orders", "inventory", "payments", "notifications"}
SUBSCRIPTIONS = {
    "demo-orders": "orders",
    "demo-confirmations": "orders",
    "demo-inventory": "inventory",
    "demo-payments": "payments",
    "demo-notifications": "notifications",
}


@pytest.fixture(scope="module")
def demo_records() -> list[SpanRecord]:
    """The spans of two demo orders on the memory bus, as `polybus demo --trace-out` records them."""
    pm = plugin_manager(load_entrypoints=False)
    tracing = install(pm)
    with Bus(MemoryBus(), hooks=pm.hook) as bus:
        flow, records = run_traced(bus, tracing, orders=2, timeout=20.0)
    assert flow.notified == {"order-1", "order-2"}
    return records


def test_flow_graph_draws_services_topics_and_subscriptions(
    demo_records: list[SpanRecord],
) -> None:
    """Publishers -> shop -> the five subscriptions, each with its service and delivery count."""
    graph = flow_graph(demo_records, {"audit": "shop"})
    nodes = {n["id"]: n for n in graph["nodes"]}
    publishers = {n["name"] for n in graph["nodes"] if n["kind"] == "service"}
    assert publishers == SERVICES - {"notifications"}  # notifications publishes nothing
    assert [n["name"] for n in graph["nodes"] if n["kind"] == "topic"] == ["shop"]
    subs = {n["name"]: n["service"] for n in graph["nodes"] if n["kind"] == "subscription"}
    assert subs == {**SUBSCRIPTIONS, "audit": None}  # known to the bus, no span yet
    edges = {(e["from"], e["to"]): e["count"] for e in graph["edges"]}
    assert edges[("service:cart", "topic:shop")] == 2  # one checkout per order
    assert edges[("topic:shop", "subscription:demo-confirmations")] == 4  # stock + payment, twice
    assert edges[("topic:shop", "subscription:audit")] == 0
    assert all(key in nodes for pair in edges for key in pair)


def test_waterfall_rows_follow_parent_order(demo_records: list[SpanRecord]) -> None:
    """Rows of one trace come after their parent, one level deeper, offsets within the total."""
    one = order_trace(demo_records, "order-1")
    doc = trace_rows(demo_records, one[0].trace_id)
    rows = doc["rows"]
    assert len(rows) == len(one) == 12
    depth_of: dict[str, int] = {}
    for row in rows:
        parent = row["parent_span_id"]
        assert parent is None or depth_of[parent] == row["depth"] - 1
        depth_of[row["span_id"]] = row["depth"]
        assert 0 <= row["offset_ms"] <= doc["total_ms"] + 1e-6
    assert rows[0]["name"] == "checkout order-1" and rows[0]["depth"] == 0
    assert sum(e["name"] == "ack" for row in rows for e in row["events"]) == 6
    newest = latest_traces(demo_records)
    assert {t["root"] for t in newest} == {"checkout order-1", "checkout order-2"}
    assert all(set(t["services"]) == SERVICES for t in newest)


def test_json_lines_source_tails_the_file_and_names_bad_lines(
    tmp_path: Path, demo_records: list[SpanRecord]
) -> None:
    """The file is read as it grows; a half-written line waits; a bad line is skipped and named."""
    path = tmp_path / "spans.jsonl"
    source = JsonLinesSource(path)
    assert source.records() == [] and "no such file" in (source.note or "")
    first, second = demo_records[0].to_json(), demo_records[1].to_json()
    path.write_text(first + "\n" + second[:20])
    assert source.records() == [demo_records[0]] and source.note is None
    with path.open("a") as out:
        out.write(second[20:] + "\n" + '{"trace_id": "xyz"}\n' + "not json\n")
    assert source.records() == demo_records[:2]
    assert source.note is not None
    assert source.note.startswith(
        f"2 malformed line(s) skipped in {path} (first: line 3: trace_id="
    )
    assert "32 lowercase hex digits" in source.note


def test_from_json_names_every_bad_field() -> None:
    """A span line with wrong fields is one ValidationError listing field, value and rule."""
    with pytest.raises(ValidationError) as caught:
        from_json({"trace_id": "0" * 32, "span_id": "short", "kind": "WEIRD", "start_ns": -1})
    fields = [(p.field, p.value) for p in caught.value.problems]
    assert fields == [("span_id", "short"), ("name", None), ("kind", "WEIRD"), ("start_ns", -1)]
    assert "PRODUCER" in caught.value.problems[2].rule


def test_recorder_and_exporter_keep_what_the_provider_ends(tmp_path: Path) -> None:
    """A SpanRecorder attached to a provider and a JsonLinesExporter see the same published span."""
    memory = memory_tracing("svc")
    recorder = SpanRecorder().attach(memory.provider)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path = tmp_path / "out.jsonl"
    memory.provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))  # type: ignore[arg-type]
    pm = plugin_manager(load_entrypoints=False)
    install(pm, tracer_provider=memory.provider, provider="local")
    with Bus(MemoryBus(), hooks=pm.hook) as bus:
        bus.publish(new_event("com.example.one", "/test", {}), topic="orders")
    memory.provider.shutdown()
    (record,) = recorder.records()
    assert (record.name, record.kind, record.service) == ("send orders", "PRODUCER", "svc")
    assert [from_json(json.loads(line)) for line in path.read_text().splitlines()] == [record]


def test_dashboard_command_mentions_traces_in_its_usage_error() -> None:
    """`polybus dashboard` with nothing to show names --traces among the options it needs."""
    result = CliRunner().invoke(cli, ["dashboard", "--port", "0"])
    assert result.exit_code == 2 and "--traces FILE" in result.output


@pytest.fixture
def flow_server(tmp_path: Path, demo_records: list[SpanRecord]) -> Iterator[DashboardServer]:
    """A dashboard on a memory bus reading the demo's spans from a `--trace-out` file."""
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in demo_records))
    with Bus(MemoryBus()) as bus:
        server = DashboardServer(Dashboard(bus, spans=[JsonLinesSource(path)])).start()
        yield server
        server.close()


def test_flow_view_and_waterfall_render_in_chromium(
    flow_server: DashboardServer, demo_records: list[SpanRecord]
) -> None:
    """Offline, the page draws the demo's services and topic, and order-1's waterfall in parent order."""
    one = order_trace(demo_records, "order-1")
    trace_id = one[0].trace_id
    outside: list[str] = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def only_local(route: Any) -> None:
                if route.request.url.startswith(flow_server.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(flow_server.url)
            page.wait_for_selector("#flow svg g.node[data-kind='topic']", timeout=10_000)
            nodes = page.eval_on_selector_all(
                "#flow g.node",
                "els => els.map(e => [e.dataset.kind, e.dataset.name, e.dataset.service || null])",
            )
            services = {name for kind, name, _ in nodes if kind == "service"}
            services |= {svc for kind, _, svc in nodes if kind == "subscription"}
            assert services == SERVICES
            assert [name for kind, name, _ in nodes if kind == "topic"] == ["shop"]
            assert {
                name: svc for kind, name, svc in nodes if kind == "subscription"
            } == SUBSCRIPTIONS
            edges = page.eval_on_selector_all("#flow path.edge", "els => els.length")
            assert edges == 4 + 5  # four publishers -> shop, shop -> five subscriptions

            page.click(f"#traces tr[data-trace='{trace_id}']")
            page.wait_for_selector(f"body[data-waterfall='{trace_id}']", timeout=10_000)
            rows = page.eval_on_selector_all(
                "#wf-rows .wf-row",
                """els => els.map(e => [e.dataset.span, e.dataset.parent, Number(e.dataset.depth),
                    e.querySelector('.wf-bar').getBoundingClientRect().width,
                    e.querySelector('.wf-label').textContent])""",
            )
        finally:
            browser.close()
    assert len(rows) == len(one)
    assert {r.span_id for r in one} == {row[0] for row in rows}
    depth: dict[str, int] = {}
    for span, parent, level, width, _ in rows:  # every span after its parent, one level deeper
        assert (parent == "" and level == 0) or depth[parent] == level - 1
        depth[span] = level
        assert width > 0
    assert rows[0][4].startswith("checkout order-1")
    assert {label.rsplit(" ", 1)[1] for *_, label in rows} == SERVICES
    assert outside == []


def test_global_recorder_only_with_an_sdk_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard records in-process spans only when the global provider is an SDK one."""
    from opentelemetry import trace

    from polybus.cli.dashboard import global_recorder

    monkeypatch.setattr(trace, "get_tracer_provider", trace.NoOpTracerProvider)
    assert global_recorder() is None
    memory = memory_tracing("board")
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: memory.provider)
    recorder = global_recorder()
    assert recorder is not None
    memory.provider.get_tracer("t").start_span("work").end()
    assert [(r.name, r.service) for r in recorder.records()] == [("work", "board")]
    memory.provider.shutdown()


def test_json_lines_source_reads_only_the_tail_of_a_large_backlog(
    tmp_path: Path, demo_records: list[SpanRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file far larger than one read keeps its newest whole lines; the cut line is dropped."""
    from polybus.core.tracing import export

    path = tmp_path / "big.jsonl"
    lines = [r.to_json() + "\n" for r in demo_records]
    path.write_text("".join(lines))
    monkeypatch.setattr(export, "MAX_READ", len(lines[-1]) + len(lines[-2]) + 10)
    source = JsonLinesSource(path)
    assert source.records() == demo_records[-2:]
    assert source.note is None


def test_tree_order_draws_every_span_once_even_with_a_parent_loop() -> None:
    """Spans whose parents point at each other (a malformed file) still appear once, after the roots."""
    from polybus.core.tracing.records import tree_order

    def span(span_id: str, parent: str | None, start: int) -> SpanRecord:
        return SpanRecord(
            "a" * 32,
            span_id * 16,
            parent and parent * 16,
            span_id,
            "INTERNAL",
            "s",
            start,
            start + 1,
        )

    records = [span("1", None, 0), span("2", "1", 1), span("3", "4", 2), span("4", "3", 3)]
    assert [(r.name, depth) for r, depth in tree_order(records)] == [
        ("1", 0),
        ("2", 1),
        ("3", 0),
        ("4", 1),
    ]
