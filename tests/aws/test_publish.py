"""PutEvents batching, sizing and per-entry failure handling, with real boto3 on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from polybus.adapters.aws.adapter import AwsAdapter, plan_batches
from polybus.adapters.aws.mapping import REQUEST_LIMIT, Entry, to_entry
from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import EventTooLargeError, PublishError
from polybus.core.events import EventFactory
from tests.aws.faults import FaultProxy
from tests.aws.helpers import AwsClients

KB = 1024


def _factory() -> EventFactory:
    counter = iter(range(1, 1_000_000))
    return EventFactory(id_factory=lambda: f"evt-{next(counter)}")


def _sized(factory: EventFactory, approx: int) -> Any:
    return factory.new("com.example.big", "/big", {"pad": "x" * approx})


def test_plan_keeps_order_and_both_limits() -> None:
    """Batches hold at most 10 entries, total under 256 KB, and keep the publish order."""
    factory = _factory()
    sizes = [1, 100 * KB, 100 * KB, 60 * KB, 1, 1, 200 * KB, *([1] * 15)]
    entries = [to_entry(_sized(factory, s), "bus") for s in sizes]
    batches = plan_batches(entries)
    assert [e for b in batches for e in b] == entries
    for batch in batches:
        assert 1 <= len(batch) <= 10
        assert sum(e.size for e in batch) < REQUEST_LIMIT
    assert [len(b) for b in batches] == [3, 3, 10, 6]


def test_plan_splits_at_exactly_the_limit() -> None:
    """Two entries whose sizes add up to exactly 256 KB go in separate requests (it must be less)."""
    half = REQUEST_LIMIT // 2
    entries = [Entry(f"e{i}", {}, half) for i in range(2)]
    assert [len(b) for b in plan_batches(entries)] == [1, 1]


def test_publish_batches_requests_on_the_wire(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """25 small events go out as 10 + 10 + 5; big ones are split so each request is under 256 KB."""
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url)
    factory = _factory()
    adapter.publish(
        unique("wire"), [factory.new("com.example.t", "/t", {"n": i}) for i in range(25)]
    )
    assert [len(c.entries) for c in fault_proxy.calls] == [10, 10, 5]
    fault_proxy.calls.clear()
    # moto does not enforce the 256 KB request limit: the proxy measures what AWS would.
    adapter.publish(unique("wire"), [_sized(factory, 90 * KB) for _ in range(7)])
    assert [len(c.entries) for c in fault_proxy.calls] == [2, 2, 2, 1]
    assert all(sum(c.entry_sizes) < REQUEST_LIMIT for c in fault_proxy.calls)


def test_oversized_event_is_rejected_before_the_network(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """An event of 256 KB or more fails with EventTooLargeError naming it; nothing is sent."""
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url)
    factory = _factory()
    small, big = factory.new("com.example.ok", "/ok"), _sized(factory, 256 * KB)
    with pytest.raises(EventTooLargeError) as caught:
        adapter.publish(unique("big"), [small, big])
    [problem] = caught.value.problems
    assert problem.field == f"event {big.get_id()}"
    assert fault_proxy.calls == []


def test_throttled_entries_alone_are_retried_with_backoff(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """ThrottlingException / InternalFailure entries are resent (only they), after a backoff, and arrive."""

    def plan(call: int, entries: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
        if call == 1:
            return {1: ("ThrottlingException", "Rate exceeded"), 3: ("InternalFailure", "oops")}
        if call == 2:
            return {0: ("ThrottlingException", "Rate exceeded")}
        return {}

    fault_proxy.plan = plan
    pauses: list[float] = []
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url, sleep=pauses.append)
    topic, sub = unique("throttle"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    factory = _factory()
    events = [factory.new("com.example.t", "/t", {"n": i}) for i in range(5)]
    adapter.publish(topic, events)
    sent = [[json.loads(e["Detail"])["id"] for e in c.entries] for c in fault_proxy.calls]
    assert sent == [["evt-1", "evt-2", "evt-3", "evt-4", "evt-5"], ["evt-2", "evt-4"], ["evt-2"]]
    assert len(pauses) == 2 and all(p >= 0 for p in pauses)
    delivered = adapter.receive(sub, 10, 3.0)
    assert sorted(d.event.get_id() for d in delivered) == [e.get_id() for e in events]
    for d in delivered:
        d.ack()


def test_entries_that_can_never_succeed_are_reported_together(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """MalformedDetail / InvalidArgument entries fail at once, all named in one PublishError."""

    def plan(call: int, entries: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
        if call == 1:
            return {0: ("MalformedDetail", "Detail is malformed."), 4: ("InvalidArgument", "bad")}
        if call == 2:
            return {2: ("AccessDeniedException", "no")}
        return {}

    fault_proxy.plan = plan
    pauses: list[float] = []
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url, sleep=pauses.append)
    factory = _factory()
    events = [factory.new("com.example.t", "/t", {"n": i}) for i in range(13)]
    with pytest.raises(PublishError) as caught:
        adapter.publish(unique("bad"), events)
    assert caught.value.failures == {
        "evt-1": "MalformedDetail: Detail is malformed.",
        "evt-5": "InvalidArgument: bad",
        "evt-13": "AccessDeniedException: no",
    }
    assert "evt-1" in str(caught.value) and "evt-13" in str(caught.value)
    assert len(fault_proxy.calls) == 2  # no retries for permanent failures
    assert pauses == []


def test_retries_give_up_and_report_the_entry(
    aws_adapter_factory: Callable[..., AwsAdapter],
    fault_proxy: FaultProxy,
    unique: Callable[[str], str],
) -> None:
    """An entry throttled on every attempt is reported in the PublishError after the last attempt."""
    fault_proxy.plan = lambda call, entries: {0: ("ThrottlingException", "Rate exceeded")}
    pauses: list[float] = []
    adapter = aws_adapter_factory(endpoint_url=fault_proxy.url, sleep=pauses.append)
    event = _factory().new("com.example.t", "/t")
    with pytest.raises(PublishError) as caught:
        adapter.publish(unique("stuck"), [event])
    assert list(caught.value.failures) == [event.get_id()]
    assert "still failing after 6 attempts" in caught.value.failures[event.get_id()]
    assert len(fault_proxy.calls) == 6 and len(pauses) == 5


def test_publish_recreates_a_bus_deleted_behind_its_back(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """If the cached bus disappears, publish creates it again and succeeds."""
    adapter = aws_adapter_factory()
    topic = unique("vanish")
    event = _factory().new("com.example.t", "/t")
    adapter.publish(topic, [event])
    aws_clients.events.delete_archive(ArchiveName=f"polybus-{topic}-archive")
    aws_clients.events.delete_event_bus(Name=f"polybus-{topic}")
    adapter.publish(topic, [event])
    assert aws_clients.events.describe_event_bus(Name=f"polybus-{topic}")["Name"]
