"""Event Grid sizing: the JSON event as sent, at most 1 MB, checked before the network."""

from __future__ import annotations

import json

import pytest

from polybus.adapters.azure.mapping import SIZE_LIMIT, encode, event_size
from polybus.adapters.azure.plugin import polybus_register_adapters
from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import EventTooLargeError
from polybus.core.events import new_event
from polybus.core.hookspecs import AdapterInfo
from polybus.core.sizing import KB, MB


def test_size_is_the_utf8_json_event_as_sent() -> None:
    """The measure is the UTF-8 length of the encoded JSON event, which decodes back to the event."""
    event = new_event("com.x", "/src", "héllo", datacontenttype="text/plain", subject="s")
    wire = encode(event)
    assert event_size(event) == len(wire)
    decoded = json.loads(wire)
    assert (decoded["id"], decoded["data"], decoded["subject"]) == (event.get_id(), "héllo", "s")


def test_plugin_registers_the_adapters_measure() -> None:
    """The registered Sizing is the 1 MB limit with mapping.event_size (no second formula)."""
    infos: list[AdapterInfo] = []
    polybus_register_adapters(infos.append)
    (info,) = infos
    assert info.sizing is not None
    assert info.sizing.measure is event_size and info.sizing.limit == SIZE_LIMIT
    assert SIZE_LIMIT.limit == MB and not SIZE_LIMIT.strict


def test_event_of_300_kb_is_accepted(azure_adapter_factory, name) -> None:
    """An event of 300 KB (too large for EventBridge) is published and delivered."""
    adapter = azure_adapter_factory()
    topic, sub = name("fits"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    event = new_event("com.x", "/s", "x" * (300 * KB), datacontenttype="text/plain")
    adapter.publish(topic, [event])
    (delivery,) = adapter.receive(sub, 1, 5.0)
    assert delivery.event.get_data() == "x" * (300 * KB)
    delivery.ack()


def test_over_one_megabyte_is_refused_before_the_network(azure_adapter_factory, name) -> None:
    """Event Grid's 1 MB: a larger event raises EventTooLargeError and nothing of the batch is sent."""
    adapter = azure_adapter_factory()
    topic, sub = name("big"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    big = new_event("com.x", "/s", b"\0" * (MB + 1), datacontenttype="application/octet-stream")
    small = new_event("com.x", "/s", "y")
    assert event_size(big) > MB
    with pytest.raises(EventTooLargeError) as refused:
        adapter.publish(topic, [small, big])
    assert [p.field for p in refused.value.problems] == [f"event {big.get_id()}"]
    assert str(MB) in str(refused.value)
    assert adapter.receive(sub, 1, 0.5) == []


def test_exactly_the_limit_is_measured_as_fitting() -> None:
    """An event measuring exactly 1 MB fits; one byte more does not (the limit is inclusive)."""
    base = new_event("com.x", "/s", "", datacontenttype="text/plain")
    pad = MB - event_size(base)
    exact = new_event(
        "com.x",
        "/s",
        "x" * pad,
        datacontenttype="text/plain",
        id=base.get_id(),
        time=base.get_time(),
    )
    assert event_size(exact) == MB and SIZE_LIMIT.fits(MB) and not SIZE_LIMIT.fits(MB + 1)
