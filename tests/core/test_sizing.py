"""The generic size limit every adapter checks on the bytes it sends."""

from __future__ import annotations

import pytest

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.errors import EventTooLargeError
from polybus.core.events import new_event
from polybus.core.sizing import KB, SizeLimit, Sizing


def test_limit_names_every_event_over_it() -> None:
    """Every oversized event is named with its size, the limit and how the provider counts."""
    limit = SizeLimit(256 * KB, counted="Time + Source + DetailType + Detail", strict=True)
    with pytest.raises(EventTooLargeError) as info:
        limit.check([("a", 256 * KB), ("b", 10), ("c", 300 * KB)], "aws")
    assert [p.field for p in info.value.problems] == ["event a", "event c"]
    assert "less than 262144" in str(info.value) and "DetailType" in str(info.value)


def test_strict_and_inclusive_limits_differ_at_the_boundary() -> None:
    """A strict limit refuses exactly the limit; an inclusive one accepts it."""
    assert not SizeLimit(100, strict=True).fits(100)
    assert SizeLimit(100, strict=True).fits(99)
    assert SizeLimit(100).fits(100)
    assert not SizeLimit(100).fits(101)


def test_offline_sizing_uses_the_registered_measure() -> None:
    """Sizing.check measures each event with the plugin's measure (the adapter's encoder)."""
    sizing = Sizing(SizeLimit(50), measure=lambda event: len(str(event.get_data())))
    sizing.check([new_event("com.x", "/s", "x" * 50, datacontenttype="text/plain")], "p")
    with pytest.raises(EventTooLargeError):
        sizing.check([new_event("com.x", "/s", "x" * 51, datacontenttype="text/plain")], "p")


def test_bus_rejects_unserialisable_payload_built_outside_polybus() -> None:
    """An SDK-built event whose data cannot be serialised is refused before the adapter."""
    from cloudevents.core.v1.event import CloudEvent

    from polybus.core.errors import EventValidationError

    adapter = MemoryBus()
    bus = Bus(adapter)
    bus.subscribe("s", lambda e: None)
    raw = CloudEvent({"type": "com.x", "source": "/s"}, {"when": {1, 2}})  # type: ignore[dict-item]
    with pytest.raises(EventValidationError) as info:
        bus.publish(raw)
    assert [p.field for p in info.value.problems] == ["data"]
    assert adapter.backlog("s") == 0
