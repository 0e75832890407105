"""Tracing of batch publishes (create spans linked from one send span) and the settle setting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.trace import SpanKind

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.core.events import new_event
from polybus.core.tracing import Tracing, install
from polybus.core.tracing.memory import MemoryTracing, memory_tracing
from polybus.core.tracing.plugin import SETTLE_ENV, settle_spans_from_env


@pytest.fixture
def memory() -> Iterator[MemoryTracing]:
    """A TracerProvider keeping spans in memory (never the global one)."""
    tracing = memory_tracing()
    yield tracing
    tracing.provider.shutdown()


def traced_bus(memory: MemoryTracing) -> Bus:
    """A memory bus whose tracing plugin records into `memory`."""
    pm = plugin_manager(load_entrypoints=False)
    install(pm, tracer_provider=memory.provider, provider="local")
    return Bus(MemoryBus(), hooks=pm.hook)


def test_batch_publish_links_one_send_span_to_each_create_span(memory: MemoryTracing) -> None:
    """A batch of 3: three PRODUCER create spans, one CLIENT send span linked to each, with the count."""
    seen: list[Any] = []
    with traced_bus(memory) as bus:
        bus.subscribe("many", seen.append, topic="orders")
        batch = [new_event("com.example.many", "/test", {"n": n}) for n in range(3)]
        bus.publish(batch, topic="orders")
        assert bus.poll("many", timeout=1.0) == 3
    spans = memory.spans()
    creates = [s for s in spans if s.name == "create orders"]
    (send,) = [s for s in spans if s.name == "send orders"]
    assert [s.kind for s in creates] == [SpanKind.PRODUCER] * 3
    assert send.kind is SpanKind.CLIENT
    assert dict(send.attributes or {}) == {
        "messaging.system": "polybus.local",
        "messaging.destination.name": "orders",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.batch.message_count": 3,
    }
    create_ids = [(s.get_span_context().trace_id, s.get_span_context().span_id) for s in creates]
    assert [(link.context.trace_id, link.context.span_id) for link in send.links] == create_ids
    for span, event in zip(creates, batch, strict=True):
        attributes = span.attributes or {}
        assert attributes["messaging.operation.type"] == "create"
        assert attributes["cloudevents.event_id"] == event.get_id()
    # each delivered event carries its own creation context, parent of its process span
    injected = {e.get_id(): e.get_extension("traceparent")[36:52] for e in seen}
    by_event = {(s.attributes or {})["cloudevents.event_id"]: s for s in creates}
    assert {k: f"{by_event[k].get_span_context().span_id:016x}" for k in injected} == injected
    process = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert {s.parent.span_id for s in process if s.parent} == {c[1] for c in create_ids}
    assert (send.start_time or 0) <= min(s.start_time or 0 for s in creates)


def test_single_publish_keeps_one_producer_send_span(memory: MemoryTracing) -> None:
    """A batch of one is a plain publish: one PRODUCER send span, no create span, no count."""
    with traced_bus(memory) as bus:
        bus.publish([new_event("com.example.one", "/test", {})], topic="orders")
    (span,) = memory.spans()
    assert (span.name, span.kind) == ("send orders", SpanKind.PRODUCER)
    assert "messaging.batch.message_count" not in (span.attributes or {})


def test_settle_setting_comes_from_the_environment() -> None:
    """POLYBUS_TRACE_SETTLE picks span or event; another value is a ConfigError naming it."""
    assert settle_spans_from_env({SETTLE_ENV: "span"}) is True
    assert settle_spans_from_env({SETTLE_ENV: " Event "}) is False
    assert settle_spans_from_env({}) is False
    with pytest.raises(ConfigError) as caught:
        settle_spans_from_env({SETTLE_ENV: "spans"})
    (problem,) = caught.value.problems
    assert (problem.field, problem.value) == (SETTLE_ENV, "spans")
    assert problem.rule.startswith("did you mean 'span'?")
    assert Tracing(settle_spans=True).settle_spans is True
