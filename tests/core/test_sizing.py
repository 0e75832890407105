"""Provider size rules reject oversized events before the network."""

from __future__ import annotations

import pytest

from adapters.local.memory import MemoryBus
from core.bus import Bus
from core.errors import EventTooLargeError
from core.events import new_event
from core.sizing import KB, MB, check_sizes, eventbridge_size, pubsub_size


def test_eventbridge_counts_time_source_type_and_detail() -> None:
    """The EventBridge size is 14 bytes for Time plus Source, DetailType and the JSON detail."""
    event = new_event("com.x", "/src", "hello", datacontenttype="text/plain")
    from core.formats import to_json

    assert eventbridge_size(event) == 14 + len("/src") + len("com.x") + len(to_json(event))


def test_each_provider_limit_applies() -> None:
    """An event of 300 KB is too large for EventBridge but fine for Event Grid and Pub/Sub."""
    event = new_event("com.x", "/s", "x" * (300 * KB), datacontenttype="text/plain")
    with pytest.raises(EventTooLargeError) as info:
        check_sizes([event], "eventbridge", "aws")
    assert "262144" in str(info.value) and event.get_id() in str(info.value)
    check_sizes([event], "eventgrid", "azure")
    check_sizes([event], "pubsub", "gcp")


def test_event_grid_rejects_over_one_megabyte() -> None:
    """Event Grid's 1 MB limit is enforced; Pub/Sub's 10 MB is not reached."""
    event = new_event("com.x", "/s", b"\0" * (MB + 1), datacontenttype="application/octet-stream")
    with pytest.raises(EventTooLargeError):
        check_sizes([event], "eventgrid", "azure")
    assert pubsub_size(event) > MB
    check_sizes([event], "pubsub", "gcp")


def test_bus_checks_size_before_the_adapter() -> None:
    """The bus refuses an oversized event and the adapter never sees it."""
    adapter = MemoryBus()
    bus = Bus(adapter, size_rule="eventbridge")
    bus.subscribe("s", lambda e: None)
    with pytest.raises(EventTooLargeError):
        bus.publish(new_event("com.x", "/s", "x" * (300 * KB), datacontenttype="text/plain"))
    assert adapter.backlog("s") == 0


def test_bus_rejects_unserialisable_payload_built_outside_polybus() -> None:
    """An SDK-built event whose data cannot be serialised is refused before the adapter."""
    from cloudevents.core.v1.event import CloudEvent

    from core.errors import EventValidationError

    adapter = MemoryBus()
    bus = Bus(adapter)
    bus.subscribe("s", lambda e: None)
    raw = CloudEvent({"type": "com.x", "source": "/s"}, {"when": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(EventValidationError) as info:
        bus.publish(raw)
    assert [p.field for p in info.value.problems] == ["data"]
    assert adapter.backlog("s") == 0


def test_eventbridge_limit_is_strict() -> None:
    """EventBridge needs less than 256 KB: exactly 262,144 bytes is refused, one less is accepted."""
    base = new_event("com.x", "/s", "", datacontenttype="text/plain")
    pad = 256 * KB - eventbridge_size(base)
    exact = new_event(
        "com.x",
        "/s",
        "x" * pad,
        datacontenttype="text/plain",
        id=base.get_id(),
        time=base.get_time(),
    )
    assert eventbridge_size(exact) == 256 * KB
    with pytest.raises(EventTooLargeError, match="less than 262144"):
        check_sizes([exact], "eventbridge", "aws")
    under = new_event(
        "com.x",
        "/s",
        "x" * (pad - 1),
        datacontenttype="text/plain",
        id=base.get_id(),
        time=base.get_time(),
    )
    check_sizes([under], "eventbridge", "aws")
