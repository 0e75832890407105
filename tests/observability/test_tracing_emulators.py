"""Tracing on the providers' emulators: one order of the demo is one trace across five services."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from polybus.adapters import connect, plugin_manager
from polybus.cli.demo import order_trace, run_traced
from polybus.core.tracing import Tracing, install

SYSTEMS = {"gcp": "gcp_pubsub", "aws": "aws.eventbridge", "azure": "eventgrid"}


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["gcp", "aws", "azure"])
def test_demo_order_is_one_trace_on_the_emulator(
    provider: str, polybus_config: Callable[[str], Path]
) -> None:
    """On the emulator, one order's spans share one trace id with correct kinds and parents."""
    pm = plugin_manager(load_entrypoints=False)
    tracing: Tracing = install(pm)
    with connect(polybus_config(provider), pm=pm) as bus:
        flow, records = run_traced(bus, tracing, orders=1, timeout=60.0)
    assert flow.notified == {"order-1"}
    one = order_trace(records, "order-1")
    assert len({r.trace_id for r in one}) == 1
    assert {r.service for r in one} == {"cart", "orders", "inventory", "payments", "notifications"}
    by_id = {r.span_id: r for r in one}
    consumers = [r for r in one if r.kind == "CONSUMER"]
    assert len(consumers) == 6
    for record in consumers:
        parent = by_id[record.parent_span_id or ""]
        assert parent.kind == "PRODUCER"
        assert (
            parent.attributes["cloudevents.event_id"] == record.attributes["cloudevents.event_id"]
        )
        assert record.attributes["messaging.system"] == SYSTEMS[provider]
