"""The memory bus is bounded: a full subscription makes publishers wait, then fail clearly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.local.memory import MemoryBus
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError
from polybus.core.events import new_event
from polybus.core.filters import parse_filter


def _events(n: int, kind: str = "com.x") -> list[CloudEvent]:
    return [new_event(kind, "/x", {"i": i}) for i in range(n)]


def test_publish_to_a_full_subscription_times_out_naming_it_and_the_bound() -> None:
    """With max_pending events waiting, publish waits publish_timeout then raises AdapterError."""
    bus = MemoryBus(max_pending=5, publish_timeout=0.2)
    bus.provision(SubscriptionSpec("slow", "t"))
    bus.publish("t", _events(5))
    with pytest.raises(AdapterError) as raised:
        bus.publish("t", _events(1))
    message = str(raised.value)
    assert "'slow'" in message and "max_pending=5" in message and "publish_timeout" in message
    assert bus.backlog("slow") == 5


def test_a_waiting_publisher_goes_on_when_a_consumer_makes_room() -> None:
    """Acks free room: a publisher blocked on a full subscription completes without error."""
    bus = MemoryBus(max_pending=3, publish_timeout=10)
    bus.provision(SubscriptionSpec("s", "t"))
    bus.publish("t", _events(3))
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            bus.publish("t", _events(2, "com.late"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    publisher = threading.Thread(target=publish)
    publisher.start()
    received: list[str] = []
    while len(received) < 5:
        for delivery in bus.receive("s", 1, 5.0):
            received.append(delivery.event.get_type())
            delivery.ack()
    publisher.join(10)
    assert errors == [] and not publisher.is_alive()
    assert received == ["com.x"] * 3 + ["com.late"] * 2


def test_in_flight_and_delayed_events_count_dead_letters_do_not() -> None:
    """The bound covers ready, in-flight and nacked-with-delay events; dead-lettering frees room."""
    bus = MemoryBus(max_pending=2, publish_timeout=0.05)
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy(max_delivery_attempts=5)))
    bus.publish("t", _events(2))
    first, second = bus.receive("s", 2, 1.0)
    first.nack(delay=60)
    with pytest.raises(AdapterError):
        bus.publish("t", _events(1))
    second.dead_letter("bad")
    bus.publish("t", _events(1))
    assert bus.backlog("s") == 2


def test_only_matching_events_count_against_a_filtered_subscription() -> None:
    """Events a subscription's filter drops never fill it; each subscription has its own bound."""
    bus = MemoryBus(max_pending=2, publish_timeout=0.05)
    bus.provision(SubscriptionSpec("only-a", "t", parse_filter({"exact": {"type": "com.a"}})))
    bus.provision(SubscriptionSpec("all", "t"))
    bus.publish("t", _events(2, "com.b"))
    assert (bus.backlog("only-a"), bus.backlog("all")) == (0, 2)
    with pytest.raises(AdapterError) as raised:
        bus.publish("t", _events(1, "com.a"))
    assert "'all'" in str(raised.value)


def test_a_batch_larger_than_the_bound_fails_at_once() -> None:
    """A batch that can never fit is refused immediately, saying to publish smaller batches."""
    bus = MemoryBus(max_pending=3, publish_timeout=30)
    bus.provision(SubscriptionSpec("s", "t"))
    with pytest.raises(AdapterError, match="can never fit"):
        bus.publish("t", _events(4))
    assert bus.backlog("s") == 0


def test_a_topic_without_subscriptions_is_never_full() -> None:
    """Publishing with nobody subscribed keeps only the bounded replay log and never waits."""
    bus = MemoryBus(max_pending=1, publish_timeout=0, retention=10)
    for _ in range(5):
        bus.publish("t", _events(10))
    bus.provision(SubscriptionSpec("s", "t"))
    bus.replay("s", datetime.now(UTC) - timedelta(hours=1))
    assert bus.backlog("s") == 10  # the replay log keeps `retention` events per topic
