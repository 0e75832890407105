"""The adapter contract, run unchanged against every registered adapter."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from polybus.core.bus import Bus
from polybus.core.capabilities import Capabilities
from polybus.core.contract import Adapter, DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import EventTooLargeError, UnsupportedError
from polybus.core.events import EventFactory
from polybus.core.filters import parse_filter
from polybus.core.hookspecs import AdapterInfo
from tests.contract.helpers import portable_view, receive_n

FAST_RETRY = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)
FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _factory() -> EventFactory:
    counter = iter(range(1, 1_000_000))
    return EventFactory(id_factory=lambda: f"evt-{next(counter)}", clock=lambda: FIXED_TIME)


def _spec(name: str, topic: str, **policy: object) -> SubscriptionSpec:
    return SubscriptionSpec(name, topic, None, DeliveryPolicy(retry=FAST_RETRY, **policy))  # type: ignore[arg-type]


def test_published_event_arrives_intact(adapter: Adapter, names: Callable[[str], str]) -> None:
    """A published event reaches the subscription with every attribute and its data preserved."""
    topic, sub = names("orders"), names("sub")
    adapter.provision(_spec(sub, topic))
    event = _factory().new(
        "com.shop.order.placed",
        "/shop/eu",
        {"order": 42, "items": ["a", "b"], "total": 9.5},
        subject="orders/42",
        extensions={"partitionkey": "cust-7", "priority": 3, "vip": True},
    )
    adapter.publish(topic, [event])
    [delivery] = receive_n(adapter, sub, 1)
    assert portable_view(delivery.event) == portable_view(event)
    assert delivery.attempt == 1
    delivery.ack()
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_binary_data_arrives_intact(adapter: Adapter, names: Callable[[str], str]) -> None:
    """Non-JSON (bytes) data survives the transport byte for byte."""
    topic, sub = names("blobs"), names("sub")
    adapter.provision(_spec(sub, topic))
    payload = bytes(range(256))
    event = _factory().new(
        "com.example.blob", "/blobs", payload, datacontenttype="application/octet-stream"
    )
    adapter.publish(topic, [event])
    [delivery] = receive_n(adapter, sub, 1)
    assert delivery.event.get_data() == payload
    assert delivery.event.get_datacontenttype() == "application/octet-stream"
    delivery.ack()


def test_batch_is_delivered_once_each(adapter: Adapter, names: Callable[[str], str]) -> None:
    """Every event of a published batch is delivered exactly once when acked."""
    topic, sub = names("batch"), names("sub")
    adapter.provision(_spec(sub, topic))
    factory = _factory()
    events = [factory.new("com.example.tick", "/ticks", {"n": i}) for i in range(25)]
    adapter.publish(topic, events)
    deliveries = receive_n(adapter, sub, 25)
    for d in deliveries:
        d.ack()
    assert sorted(d.event.get_id() for d in deliveries) == sorted(e.get_id() for e in events)
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_publish_without_subscribers_succeeds(
    adapter: Adapter, names: Callable[[str], str]
) -> None:
    """Publishing to a topic nobody subscribes to is accepted, and a later subscriber is unaffected."""
    topic = names("lonely")
    adapter.publish(topic, [_factory().new("com.example.x", "/x")])
    sub = names("late")
    adapter.provision(_spec(sub, topic))
    event = _factory().new("com.example.y", "/y")
    adapter.publish(topic, [event])
    [delivery] = receive_n(adapter, sub, 1)
    assert delivery.event.get_type() == "com.example.y"
    delivery.ack()


def test_nack_redelivers_with_next_attempt(adapter: Adapter, names: Callable[[str], str]) -> None:
    """A nacked delivery comes back with its attempt number increased."""
    topic, sub = names("retry"), names("sub")
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [_factory().new("com.example.retry", "/r")])
    [first] = receive_n(adapter, sub, 1)
    first.nack(0.0)
    [second] = receive_n(adapter, sub, 1)
    assert second.event.get_id() == first.event.get_id()
    assert second.attempt == first.attempt + 1
    second.ack()


def test_nack_delay_hides_the_event(adapter: Adapter, names: Callable[[str], str]) -> None:
    """A nack with a delay keeps the event invisible for that long, then redelivers it."""
    topic, sub = names("delay"), names("sub")
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [_factory().new("com.example.later", "/l")])
    [first] = receive_n(adapter, sub, 1)
    first.nack(3.0)
    assert adapter.receive(sub, 1, 0.5) == []
    [again] = receive_n(adapter, sub, 1)
    assert again.event.get_id() == first.event.get_id()
    again.ack()


def test_competing_consumers_do_not_share_a_lease(
    adapter: Adapter, names: Callable[[str], str]
) -> None:
    """While one consumer holds a delivery, another receive on the subscription does not get it."""
    topic, sub = names("compete"), names("sub")
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [_factory().new("com.example.one", "/one")])
    [held] = receive_n(adapter, sub, 1)
    assert adapter.receive(sub, 10, 1.0) == []
    held.ack()


def test_dead_letter_moves_event_with_reason(adapter: Adapter, names: Callable[[str], str]) -> None:
    """An explicitly dead-lettered delivery leaves the subscription and appears in its dead-letter target."""
    topic, sub = names("poison"), names("sub")
    adapter.provision(_spec(sub, topic))
    event = _factory().new("com.example.poison", "/p", {"bad": True})
    adapter.publish(topic, [event])
    [delivery] = receive_n(adapter, sub, 1)
    delivery.dead_letter("cannot parse")
    [dead] = receive_n(adapter, sub, 1, dead=True)
    assert dead.event.get_id() == event.get_id()
    dead.ack()
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_nack_after_max_attempts_dead_letters(
    adapter: Adapter, names: Callable[[str], str]
) -> None:
    """Nacking on the last allowed attempt dead-letters instead of redelivering."""
    topic, sub = names("exhaust"), names("sub")
    adapter.provision(_spec(sub, topic, max_delivery_attempts=2))
    adapter.publish(topic, [_factory().new("com.example.fail", "/f")])
    [first] = receive_n(adapter, sub, 1)
    first.nack(0.0)
    [second] = receive_n(adapter, sub, 1)
    assert second.attempt == 2
    second.nack(0.0)
    [dead] = receive_n(adapter, sub, 1, dead=True)
    assert dead.event.get_id() == first.event.get_id()
    dead.ack()
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_provision_is_idempotent(adapter: Adapter, names: Callable[[str], str]) -> None:
    """Provisioning the same subscription twice keeps one subscription with one delivery per event."""
    topic, sub = names("idem"), names("sub")
    adapter.provision(_spec(sub, topic))
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [_factory().new("com.example.idem", "/i")])
    deliveries = receive_n(adapter, sub, 1)
    for d in deliveries:
        d.ack()
    assert len(deliveries) == 1
    assert receive_n(adapter, sub, 1, timeout=1.0) == []


def test_bus_filter_delivers_only_matches(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """Through the bus, a filtered subscription's handler sees exactly the matching events."""
    topic, sub = names("filtered"), names("sub")
    bus = Bus(adapter, capabilities=capabilities)
    seen: list[str] = []
    flt = parse_filter(
        {"all": [{"prefix": {"type": "com.shop."}}, {"not": {"suffix": {"subject": "-test"}}}]}
    )
    bus.subscribe(sub, lambda e: seen.append(e.get_id()), topic=topic, filter=flt)
    factory = _factory()
    matching = [
        factory.new("com.shop.order.placed", "/s", subject="eu-1"),
        factory.new("com.shop.order.paid", "/s", subject="us-2"),
    ]
    others = [
        factory.new("com.other.thing", "/s", subject="eu-3"),
        factory.new("com.shop.order.placed", "/s", subject="eu-4-test"),
    ]
    bus.publish(matching + others, topic=topic)
    _drain_until(bus, lambda: len(seen) >= len(matching))
    bus.drain(idle=1.0)
    assert sorted(seen) == sorted(e.get_id() for e in matching)


def test_bus_retries_then_dead_letters_and_counts_add_up(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """A handler that always fails is retried, then dead-lettered; every delivery is accounted for."""
    topic, sub = names("failing"), names("sub")
    bus = Bus(adapter, capabilities=capabilities)
    calls: list[str] = []

    def handler(event: object) -> None:
        calls.append("x")
        raise RuntimeError("downstream unavailable")

    policy = DeliveryPolicy(max_delivery_attempts=3, retry=FAST_RETRY)
    subscription = bus.subscribe(sub, handler, topic=topic, policy=policy)
    factory = _factory()
    events = [factory.new("com.example.work", "/w", {"n": i}) for i in range(3)]
    bus.publish(events, topic=topic)
    _drain_until(bus, lambda: subscription.stats.dead_lettered >= 3)
    stats = subscription.stats
    assert stats.dead_lettered == 3
    assert stats.retried == 6
    assert stats.delivered == len(calls) == 9 == stats.settled()
    dead = receive_n(adapter, sub, 3, dead=True)
    assert sorted(d.event.get_id() for d in dead) == sorted(e.get_id() for e in events)
    for d in dead:
        d.ack()


def test_bus_handler_recovers_on_retry(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """A handler that fails once succeeds on the redelivery and the event is acked, not dead-lettered."""
    topic, sub = names("flaky"), names("sub")
    bus = Bus(adapter, capabilities=capabilities)
    attempts: list[int] = []

    def handler(event: object) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("transient")

    subscription = bus.subscribe(sub, handler, topic=topic, policy=DeliveryPolicy(retry=FAST_RETRY))
    bus.publish(_factory().new("com.example.flaky", "/f"), topic=topic)
    _drain_until(bus, lambda: subscription.stats.acked >= 1)
    assert (subscription.stats.retried, subscription.stats.acked) == (1, 1)
    assert subscription.stats.dead_lettered == 0


def test_ordered_subscription_keeps_key_order(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """With ordering declared, events sharing a partition key are handled in publish order;
    without it, an ordered subscription is refused before anything is provisioned."""
    topic, sub = names("ordered"), names("sub")
    bus = Bus(adapter, capabilities=capabilities)
    seen: list[int] = []
    policy = DeliveryPolicy(ordered=True, retry=FAST_RETRY)
    if not capabilities.ordering:
        with pytest.raises(UnsupportedError, match="ordered") as refused:
            bus.subscribe(sub, lambda e: None, topic=topic, policy=policy)
        assert [p.field for p in refused.value.problems] == ["policy.ordered"]
        assert sub not in bus.subscriptions
        return
    bus.subscribe(sub, lambda e: seen.append(e.get_data()["n"]), topic=topic, policy=policy)
    factory = _factory()
    events = [
        factory.new("com.example.seq", "/o", {"n": i}, extensions={"partitionkey": "k1"})
        for i in range(10)
    ]
    bus.publish(events, topic=topic)
    _drain_until(bus, lambda: len(seen) >= 10)
    assert seen == list(range(10))


def test_deleted_subscription_stops_receiving(
    adapter: Adapter, names: Callable[[str], str]
) -> None:
    """After delete_subscription, publishing to its topic still works and nothing is left behind."""
    topic, sub = names("gone"), names("sub")
    adapter.provision(_spec(sub, topic))
    adapter.delete_subscription(sub)
    adapter.delete_subscription(sub)  # idempotent
    adapter.publish(topic, [_factory().new("com.example.after", "/a")])
    other = names("other")
    adapter.provision(_spec(other, topic))
    adapter.publish(topic, [_factory().new("com.example.after", "/a")])
    [delivery] = receive_n(adapter, other, 1)
    delivery.ack()


def test_delivery_attempts_follow_the_declared_range(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """Both ends of the declared attempt range are accepted; one beyond either end is refused."""
    topic = names("attempts")
    bus = Bus(adapter, capabilities=capabilities)
    low, high = capabilities.delivery_attempts
    for n, attempts in enumerate((low, high)):
        policy = DeliveryPolicy(max_delivery_attempts=attempts, retry=FAST_RETRY)
        bus.subscribe(names(f"ok{n}"), lambda e: None, topic=topic, policy=policy)
    outside = [a for a in (low - 1, high + 1) if 1 <= a <= 100]  # DeliveryPolicy allows 1..100
    for attempts in outside:
        policy = DeliveryPolicy(max_delivery_attempts=attempts, retry=FAST_RETRY)
        with pytest.raises(UnsupportedError) as refused:
            bus.subscribe(names(f"no{attempts}"), lambda e: None, topic=topic, policy=policy)
        assert refused.value.problems[0].field == "policy.max_delivery_attempts"
    assert len(bus.subscriptions) == 2


def test_replay_redelivers_when_declared_and_is_refused_otherwise(
    adapter: Adapter, capabilities: Capabilities, names: Callable[[str], str]
) -> None:
    """A declared replay redelivers acked events published since a time; otherwise it is refused."""
    topic, sub = names("replayed"), names("sub")
    bus = Bus(adapter, capabilities=capabilities)
    seen: list[str] = []
    bus.subscribe(sub, lambda e: seen.append(e.get_id()), topic=topic)
    if not capabilities.replay:
        with pytest.raises(UnsupportedError, match="replay"):
            bus.replay(sub, datetime.now(UTC))
        return
    since = datetime.now(UTC) - timedelta(seconds=5)
    events = [EventFactory().new("com.example.replayed", "/r", {"n": i}) for i in range(2)]
    bus.publish(events, topic=topic)
    _drain_until(bus, lambda: len(seen) >= 2)
    bus.replay(sub, since)
    _drain_until(bus, lambda: len(seen) >= 4, limit=60.0)
    assert sorted(seen) == sorted([e.get_id() for e in events] * 2)


def test_oversized_event_is_refused_before_the_network(
    adapter: Adapter, adapter_info: AdapterInfo, names: Callable[[str], str]
) -> None:
    """An event over the declared size limit raises EventTooLargeError and is never delivered."""
    topic, sub = names("big"), names("sub")
    adapter.provision(_spec(sub, topic))
    sizing = adapter_info.sizing
    if sizing is None:
        assert adapter_info.capabilities.max_event_size is None
        adapter.publish(topic, [_factory().new("com.example.big", "/b", "x" * 2**20)])
        [delivery] = receive_n(adapter, sub, 1)
        delivery.ack()
        return
    assert adapter_info.capabilities.max_event_size == sizing.limit.limit
    big = _factory().new("com.example.big", "/b", "x" * sizing.limit.limit)
    small = _factory().new("com.example.small", "/b", "y")
    assert not sizing.limit.fits(sizing.measure(big))
    with pytest.raises(EventTooLargeError) as refused:
        adapter.publish(topic, [small, big])
    assert refused.value.problems[0].field == f"event {big.get_id()}"
    assert receive_n(adapter, sub, 1, timeout=2.0) == []  # nothing of the batch was sent


def test_filter_compiler_matches_declared_native_filtering(adapter_info: AdapterInfo) -> None:
    """An adapter without native filters leaves every filter to the client; one with them
    evaluates at least a plain type match natively."""
    flt = parse_filter("type = 'com.shop.order.placed'")
    compiled = None if adapter_info.filters is None else adapter_info.filters.compile(flt)
    if not adapter_info.capabilities.native_filters:
        assert compiled is None or (compiled.native is None and compiled.residual == flt)
    else:
        assert compiled is not None and compiled.native is not None


def _drain_until(bus: Bus, done: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        for name in list(bus.subscriptions):
            bus.poll(name, timeout=0.2)
