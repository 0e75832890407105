"""EventBridge sizing: 14 bytes for Time + Source + DetailType + Detail, strictly under 256 KB.

Carried from the former core sizing tests: the formula now lives in the
adapter (mapping.to_entry measures the entry it builds, mapping.event_size is
the same measure for offline checks) and publish checks it before any network
call. moto does not enforce the limit, so the fault proxy in front of it
records whether anything was sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.adapters.aws.mapping import SIZE_LIMIT, event_size, to_entry
from polybus.adapters.aws.plugin import SIZING
from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import EventTooLargeError
from polybus.core.events import build_event, new_event
from polybus.core.formats import to_json
from polybus.core.sizing import KB
from tests.aws.faults import FaultProxy

LIMIT = 256 * KB


def _padded(base: CloudEvent, pad: int) -> CloudEvent:
    """`base` with `pad` bytes of text data (same id and time, so only the data differs)."""
    return new_event(
        "com.x",
        "/s",
        "x" * pad,
        datacontenttype="text/plain",
        id=base.get_id(),
        time=base.get_time(),
    )


def _at_limit() -> tuple[CloudEvent, CloudEvent]:
    """An event measuring exactly 256 KB, and the same event one byte smaller."""
    base = new_event("com.x", "/s", "", datacontenttype="text/plain")
    pad = LIMIT - event_size(base)
    return _padded(base, pad), _padded(base, pad - 1)


def test_size_counts_time_source_type_and_detail() -> None:
    """The size is 14 bytes for Time plus Source, DetailType and the JSON-format event as Detail."""
    event = new_event("com.x", "/src", "hello", datacontenttype="text/plain")
    assert event_size(event) == 14 + len("/src") + len("com.x") + len(to_json(event))


def test_time_counts_fourteen_bytes() -> None:
    """A supplied Time adds 14 bytes; an event without a time sends no Time and counts none."""
    timed = new_event("com.x", "/s", "data", datacontenttype="text/plain")
    attrs = {k: v for k, v in timed.get_attributes().items() if k != "time"}
    untimed = build_event(attrs, "data")
    assert "Time" not in to_entry(untimed, "bus").request
    assert event_size(untimed) == len("/s") + len("com.x") + len(to_json(untimed))
    assert event_size(timed) == 14 + len("/s") + len("com.x") + len(to_json(timed))


def test_multibyte_characters_count_as_utf8_bytes() -> None:
    """Source, DetailType and Detail are counted in UTF-8 bytes, not characters."""
    event = new_event("tÿpe", "/sourcé", "€", datacontenttype="text/plain")
    expected = 14 + len("/sourcé".encode()) + len("tÿpe".encode()) + len(to_json(event))
    assert event_size(event) == expected


def test_event_size_is_the_entry_publish_sends() -> None:
    """event_size measures the very entry to_entry builds for publish, whatever the bus."""
    event = new_event("com.x", "/s", {"k": "v" * 100})
    entry = to_entry(event, "polybus-orders")
    assert event_size(event) == entry.size
    assert SIZING.measure is event_size and SIZING.limit is SIZE_LIMIT


def test_limit_is_strict() -> None:
    """Exactly 262,144 bytes is refused, one byte less is accepted (offline, through the Sizing)."""
    exact, under = _at_limit()
    assert (event_size(exact), event_size(under)) == (LIMIT, LIMIT - 1)
    with pytest.raises(EventTooLargeError, match="less than 262144"):
        SIZING.check([exact], "aws")
    SIZING.check([under], "aws")


def test_publish_refuses_the_boundary_event_before_the_network(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """publish raises EventTooLargeError for a 256 KB entry and sends nothing of that call to moto."""
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url)
    exact, _ = _at_limit()
    small = new_event("com.x", "/s", "small", datacontenttype="text/plain")
    with pytest.raises(EventTooLargeError) as caught:
        adapter.publish(unique("big"), [small, exact])
    [problem] = caught.value.problems
    assert problem.field == f"event {exact.get_id()}"
    assert problem.value == f"{LIMIT} bytes"
    assert fault_proxy.calls == []


def test_publish_sends_the_largest_event_that_fits(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """An entry one byte under 256 KB goes out alone, AWS's count of it matching event_size."""
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url)
    topic, sub = unique("big"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    _, under = _at_limit()
    adapter.publish(topic, [under])
    [call] = fault_proxy.calls
    assert call.entry_sizes == [LIMIT - 1]
    [delivery] = adapter.receive(sub, 1, 2.0)
    assert delivery.event.get_data() == under.get_data()
    delivery.ack()
