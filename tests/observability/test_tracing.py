"""Tracing with OpenTelemetry on the local bus: spans, kinds, parents, attributes, no-op."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.app import App
from polybus.cli.demo import order_trace, run_traced
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy
from polybus.core.errors import Problem, ValidationError
from polybus.core.events import new_event
from polybus.core.hookspecs import hookimpl
from polybus.core.tracing import PLUGIN_NAME, Tracing, install
from polybus.core.tracing.memory import MemoryTracing, memory_tracing
from polybus.core.tracing.records import SpanRecord
from polybus.testing import TestBus

SERVICES = {"cart", "orders", "inventory", "payments", "notifications"}


@pytest.fixture
def memory() -> Iterator[MemoryTracing]:
    """A TracerProvider keeping spans in memory (never the global one)."""
    tracing = memory_tracing()
    yield tracing
    tracing.provider.shutdown()


def traced_bus(memory: MemoryTracing, *plugins: object) -> tuple[Bus, Tracing]:
    """A memory bus whose tracing plugin records into `memory`."""
    pm = plugin_manager(plugins, load_entrypoints=False)
    tracing: Tracing = install(pm)
    tracing.configure(tracer_provider=memory.provider, provider="local")
    return Bus(MemoryBus(), hooks=pm.hook), tracing


def check_order_trace(one: list[SpanRecord], settle_spans: bool) -> None:
    """Kinds, parents and semconv attributes of one demo order's spans."""
    assert {r.service for r in one} == SERVICES
    assert len({r.trace_id for r in one}) == 1
    by_id = {r.span_id: r for r in one}
    kinds = [r.kind for r in one]
    # send: cart, orders, inventory, payments, confirmation; process: 6 deliveries, each acked
    assert kinds.count("PRODUCER") == 5
    assert kinds.count("CONSUMER") == 6
    assert kinds.count("CLIENT") == (6 if settle_spans else 0)
    for record in one:
        parent = by_id.get(record.parent_span_id or "")
        if record.kind == "CONSUMER":
            assert parent is not None and parent.kind == "PRODUCER"
            assert (
                record.attributes["cloudevents.event_id"]
                == parent.attributes["cloudevents.event_id"]
            )
            assert (
                record.name
                == f"process {record.attributes['messaging.destination.subscription.name']}"
            )
            assert record.attributes["messaging.operation.type"] == "process"
            settles = [e for e in record.events if e["name"] == "ack"]
            assert len(settles) == (0 if settle_spans else 1)
            for settle in settles:
                assert settle["attributes"]["messaging.operation.type"] == "settle"
        elif record.kind == "PRODUCER":
            assert parent is not None and parent.kind in ("CONSUMER", "INTERNAL")
            assert record.name == "send shop"
            assert record.attributes["messaging.destination.name"] == "shop"
            assert record.attributes["cloudevents.event_subject"] == "order-1"
        elif record.kind == "CLIENT":
            assert parent is not None and parent.kind == "CONSUMER"
            assert record.name.startswith("ack ")
            assert record.attributes["messaging.operation.type"] == "settle"
        else:
            assert record.parent_span_id is None and record.service == "cart"
        if record.kind != "INTERNAL":
            assert record.attributes["messaging.system"] == "polybus.local"


def test_demo_order_is_one_trace_across_five_services(memory: MemoryTracing) -> None:
    """The five demo services' spans of one order share one trace; settlements are span events."""
    bus, tracing = traced_bus(memory)
    with bus:
        flow, records = run_traced(bus, tracing, orders=2, timeout=20.0)
    assert flow.notified == {"order-1", "order-2"}
    one = order_trace(records, "order-1")
    check_order_trace(one, settle_spans=False)
    other = order_trace(records, "order-2")
    assert other and other[0].trace_id != one[0].trace_id


def test_settle_spans_opt_in_records_a_client_span_per_settlement(memory: MemoryTracing) -> None:
    """With settle_spans=True every delivery of an order gets an `ack` CLIENT span, child of process."""
    bus, tracing = traced_bus(memory)
    tracing.configure(settle_spans=True)
    with bus:
        flow, records = run_traced(bus, tracing, orders=1, timeout=20.0)
    assert flow.notified == {"order-1"}
    check_order_trace(order_trace(records, "order-1"), settle_spans=True)


def test_event_without_context_starts_a_new_root(memory: MemoryTracing) -> None:
    """A delivered event that carries no traceparent gets a root process span."""
    bus, _ = traced_bus(memory)
    with bus:
        bus.subscribe("plain", lambda event: None, topic="t")
        bus.adapter.publish("t", [new_event("com.example.plain", "/test", {"n": 1})])
        assert bus.poll("plain", timeout=1.0) == 1
    (process,) = [s for s in memory.spans() if s.kind is SpanKind.CONSUMER]
    assert process.parent is None
    assert process.name == "process plain"


def test_publish_carries_the_producer_context(memory: MemoryTracing) -> None:
    """The published event's traceparent names the PRODUCER span, whose attributes follow semconv."""
    seen: list[Any] = []
    bus, _ = traced_bus(memory)
    with bus:
        bus.subscribe("one", seen.append, topic="t")
        event = new_event("com.example.one", "/test", {"n": 1}, subject="s-1")
        bus.publish(event, topic="t")
        bus.poll("one", timeout=1.0)
    (producer,) = [s for s in memory.spans() if s.kind is SpanKind.PRODUCER]
    ctx = producer.get_span_context()
    assert seen[0].get_extension("traceparent")[:52] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}"
    assert producer.name == "send t"
    assert dict(producer.attributes or {}) == {
        "messaging.system": "polybus.local",
        "messaging.destination.name": "t",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_source": "/test",
        "cloudevents.event_type": "com.example.one",
        "cloudevents.event_subject": "s-1",
    }


def test_republished_event_links_to_its_original_trace(memory: MemoryTracing) -> None:
    """Publishing an event that already has a traceparent (a requeue) starts a trace linked to it."""
    original = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    bus, _ = traced_bus(memory)
    with bus:
        bus.subscribe("again", lambda event: None, topic="t")
        bus.publish(
            new_event("com.example.again", "/test", {}, extensions={"traceparent": original}),
            topic="t",
        )
    (producer,) = [s for s in memory.spans() if s.kind is SpanKind.PRODUCER]
    assert producer.parent is None
    assert f"{producer.get_span_context().trace_id:032x}" != original[3:35]
    (link,) = producer.links
    assert f"{link.context.trace_id:032x}" == original[3:35]
    assert f"{link.context.span_id:016x}" == original[36:52]


def test_failures_record_nack_then_dead_letter_settle_spans(memory: MemoryTracing) -> None:
    """Settle spans opted in: a failing handler's process spans are errors, settled nack then dead_letter."""
    app = App("failing")

    @app.subscriber("boom", topic="t", policy=DeliveryPolicy(max_delivery_attempts=2))
    def boom(event: Any) -> None:
        raise RuntimeError("no stock")

    tracing = Tracing(tracer_provider=memory.provider, settle_spans=True)
    with TestBus(app, plugins=[tracing]) as test_bus:
        test_bus.publish(new_event("com.example.boom", "/test", {}), topic="t")
    spans = memory.spans()
    process = [s for s in spans if s.kind is SpanKind.CONSUMER]
    settles = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert len(process) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in process)
    assert all(s.events and s.events[0].name == "exception" for s in process)
    assert [s.name for s in settles] == ["nack boom", "dead_letter boom"]
    assert {s.parent.span_id for s in settles if s.parent} == {
        s.get_span_context().span_id for s in process
    }


def test_failures_record_settlements_as_events_by_default(memory: MemoryTracing) -> None:
    """By default a failing delivery's process span carries a nack, then a dead_letter, event."""
    app = App("failing")

    @app.subscriber("boom", topic="t", policy=DeliveryPolicy(max_delivery_attempts=2))
    def boom(event: Any) -> None:
        raise RuntimeError("no stock")

    with TestBus(app, plugins=[Tracing(tracer_provider=memory.provider)]) as test_bus:
        test_bus.publish(new_event("com.example.boom", "/test", {}), topic="t")
    process = sorted(
        (s for s in memory.spans() if s.kind is SpanKind.CONSUMER),
        key=lambda s: s.start_time or 0,
    )
    assert not [s for s in memory.spans() if s.kind is SpanKind.CLIENT]
    assert [[e.name for e in s.events] for s in process] == [
        ["nack", "exception"],
        ["dead_letter", "exception"],
    ]
    settle = process[1].events[0].attributes or {}
    # the event names the operation; its span already names system and subscription
    assert dict(settle) == {
        "messaging.operation.name": "dead_letter",
        "messaging.operation.type": "settle",
    }
    assert process[1].attributes["messaging.system"] == "polybus"
    assert process[1].attributes["messaging.destination.subscription.name"] == "boom"
    assert [s.attributes["polybus.outcome"] for s in process if s.attributes] == [
        "retried",
        "dead-lettered",
    ]


class _Refuse:
    """Middleware that refuses every delivery in before_handle."""

    @hookimpl
    def polybus_before_handle(self, event: Any, subscription: str) -> None:
        raise ValidationError("refused", [Problem("event", event.get_id(), "not wanted")])


def test_refused_delivery_still_ends_its_span(memory: MemoryTracing) -> None:
    """A delivery refused by other middleware still ends its process span, settled dead_letter."""
    bus, _ = traced_bus(memory, _Refuse())
    with bus:
        bus.subscribe("refused", lambda event: None, topic="t")
        bus.publish(new_event("com.example.refused", "/test", {}), topic="t")
        bus.poll("refused", timeout=1.0)
    names = sorted(s.name for s in memory.spans())
    assert names == ["process refused", "send t"]
    (process,) = [s for s in memory.spans() if s.kind is SpanKind.CONSUMER]
    assert [e.name for e in process.events] == ["dead_letter", "exception"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached


def test_tracing_is_a_no_op_without_a_configured_provider() -> None:
    """With a no-op TracerProvider, events get no traceparent; unconfigured, none is registered."""
    pm = plugin_manager(load_entrypoints=False)
    tracing: Tracing = install(pm)
    tracing.configure(tracer_provider=trace.NoOpTracerProvider())
    assert not tracing.enabled
    seen: list[Any] = []
    with Bus(MemoryBus(), hooks=pm.hook) as bus:
        bus.subscribe("quiet", seen.append, topic="t")
        event = new_event("com.example.quiet", "/test", {})
        bus.publish(event, topic="t")
        bus.poll("quiet", timeout=1.0)
    assert seen[0].get_extension("traceparent") is None
    assert seen[0].get_id() == event.get_id()
    assert plugin_manager(load_entrypoints=False).get_plugin(PLUGIN_NAME) is None  # zero cost


def test_demo_trace_out_writes_json_lines(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`polybus demo --trace --trace-out FILE` prints a waterfall and writes one span per line."""
    import json

    from click.testing import CliRunner

    from polybus.cli.main import cli

    monkeypatch.chdir(tmp_path)  # the embedded bus: no configuration around
    monkeypatch.delenv("POLYBUS_CONFIG", raising=False)
    monkeypatch.delenv("POLYBUS_PROVIDER", raising=False)
    out = tmp_path / "spans.jsonl"
    result = CliRunner().invoke(cli, ["demo", "--orders", "1", "--trace", "--trace-out", str(out)])
    assert result.exit_code == 0, result.output
    assert "process demo-notifications" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12  # checkout + 5 sends + 6 process (each with its ack event)
    assert sum(e["name"] == "ack" for line in lines for e in line["events"]) == 6
    assert {line["service"] for line in lines} == SERVICES
    assert len({line["trace_id"] for line in lines}) == 1
    keys = {"trace_id", "span_id", "parent_span_id", "name", "kind", "service", "attributes"}
    assert all(keys <= line.keys() for line in lines)


class _Refusing(MemoryBus):
    """A memory bus whose publish fails, as a provider's outage would."""

    def publish(self, topic: str, events: Any) -> None:
        raise ConnectionError("provider unreachable")


def test_failed_publish_ends_its_send_span_as_an_error(memory: MemoryTracing) -> None:
    """A publish that raises never reports back; flush() ends its send span with status ERROR."""
    pm = plugin_manager(load_entrypoints=False)
    tracing: Tracing = install(pm)
    tracing.configure(tracer_provider=memory.provider)
    bus = Bus(_Refusing(), hooks=pm.hook)
    with pytest.raises(ConnectionError):
        bus.publish(new_event("com.example.lost", "/test", {}), topic="t")
    assert memory.spans() == []  # still waiting for after_publish
    tracing.flush()
    (span,) = memory.spans()
    assert span.name == "send t"
    assert span.status.status_code is StatusCode.ERROR
