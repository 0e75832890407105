"""Pub/Sub's size limit: measured on the message the adapter sends, checked before the network."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from polybus.adapters.gcp.emulator import GcpEmulator
from polybus.adapters.gcp.mapping import SIZE_LIMIT, event_size, message_size, to_message
from polybus.adapters.gcp.plugin import polybus_register_adapters
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import EventTooLargeError
from polybus.core.events import new_event
from polybus.core.hookspecs import AdapterInfo
from polybus.core.sizing import KB, MB
from tests.contract.helpers import receive_n
from tests.fixtures.gcp import PROJECT

LIMIT = 10 * 1000 * 1000
FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"big-{suffix}", f"big-sub-{suffix}"


def _blob(size: int) -> Any:
    return new_event("com.x", "/s", b"\0" * size, datacontenttype="application/octet-stream")


def test_size_is_data_plus_attribute_keys_and_values() -> None:
    """A binary-mode event counts its data bytes plus every ce-* key and value in UTF-8."""
    event = new_event("com.x", "/s", "héllo", datacontenttype="text/plain", subject="ü")
    data, attributes = to_message(event)
    assert data == "héllo".encode()
    expected = len(data) + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    assert event_size(event) == message_size(data, attributes) == expected


def test_structured_mode_measures_what_structured_mode_sends() -> None:
    """The measure follows the encoding: structured JSON is larger than binary for the same event."""
    event = new_event("com.x", "/s", {"n": 1})
    binary = message_size(*to_message(event, "binary"))
    structured = message_size(*to_message(event, "structured"))
    assert binary == event_size(event) < structured


def test_registered_sizing_is_the_adapters_measure_and_limit() -> None:
    """The plugin's Sizing uses mapping.event_size and Pub/Sub's 10,000,000-byte limit."""
    registered: list[AdapterInfo] = []
    polybus_register_adapters(registered.append)
    [info] = registered
    assert info.sizing is not None
    assert info.sizing.measure is event_size and info.sizing.limit is SIZE_LIMIT
    assert SIZE_LIMIT.limit == LIMIT and not SIZE_LIMIT.strict


def test_offline_check_accepts_300_kb_and_1_mb_but_not_over_10_mb() -> None:
    """300 KB and just over 1 MiB fit Pub/Sub (unlike EventBridge and Event Grid); over 10 MB does not."""
    registered: list[AdapterInfo] = []
    polybus_register_adapters(registered.append)
    [info] = registered
    assert info.sizing is not None
    small = new_event("com.x", "/s", "x" * (300 * KB), datacontenttype="text/plain")
    over_one_mib = _blob(MB + 1)
    assert event_size(over_one_mib) > MB
    info.sizing.check([small, over_one_mib], "gcp")
    big = _blob(LIMIT)
    with pytest.raises(EventTooLargeError) as caught:
        info.sizing.check([small, big], "gcp")
    assert [p.field for p in caught.value.problems] == [f"event {big.get_id()}"]
    assert "10000000" in str(caught.value)


def test_limit_is_inclusive_at_exactly_ten_million_bytes() -> None:
    """An event of exactly 10,000,000 bytes fits; one byte more does not."""
    base = _blob(1)  # empty data is written in structured mode (docs/data-model.md)
    overhead = event_size(base) - 1
    fits = _blob(LIMIT - overhead)
    assert event_size(fits) == LIMIT and SIZE_LIMIT.fits(event_size(fits))
    assert not SIZE_LIMIT.fits(event_size(_blob(LIMIT - overhead + 1)))


def test_oversized_event_never_reaches_the_emulator(
    gcp_emulator: GcpEmulator, gcp_adapter_factory: Callable[[], Any]
) -> None:
    """publish() refuses a batch with an oversized event before any call: no topic, no message."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    small = new_event("com.x", "/s", {"n": 1})
    with pytest.raises(EventTooLargeError) as caught:
        adapter.publish(topic, [small, _blob(LIMIT)])
    assert len(caught.value.problems) == 1
    topics = gcp_emulator.backend.list_topics(f"projects/{PROJECT}")
    assert f"projects/{PROJECT}/topics/{topic}" not in topics
    adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(retry=FAST)))
    with pytest.raises(EventTooLargeError):
        adapter.publish(topic, [small, _blob(LIMIT)])
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_configured_mode_is_what_publish_measures(gcp_emulator: GcpEmulator) -> None:
    """In structured mode the JSON envelope (data base64-encoded) counts: a blob that fits binary is refused."""
    from polybus.adapters.gcp.plugin import make_adapter

    blob = _blob(8 * 1000 * 1000)  # base64 makes it ~10.7 MB in structured JSON
    assert SIZE_LIMIT.fits(event_size(blob))
    adapter = make_adapter(
        {**gcp_emulator.settings(), "project": PROJECT, "content_mode": "structured"}
    )
    try:
        topic, _ = _names()
        with pytest.raises(EventTooLargeError):
            adapter.publish(topic, [blob])
        assert f"projects/{PROJECT}/topics/{topic}" not in gcp_emulator.backend.list_topics(
            f"projects/{PROJECT}"
        )
    finally:
        adapter.close()


def test_event_that_fits_is_delivered_intact(gcp_adapter_factory: Callable[[], Any]) -> None:
    """A 2 MiB event (twice Event Grid's limit, well under Pub/Sub's) travels intact."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(retry=FAST)))
    event = _blob(2 * MB)
    adapter.publish(topic, [event])
    [delivery] = receive_n(adapter, sub, 1)
    assert delivery.event.get_data() == event.get_data()
    delivery.ack()
