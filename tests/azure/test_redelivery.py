"""Portable max_delivery_attempts above Event Grid's 10 (namespace pull, redelivery topic)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.adapter import AzureAdapter
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.mapping import (
    REDELIVERY_SUBSCRIPTION,
    CopyState,
    native_name,
    stamp_copy,
    take_copy_state,
)
from polybus.adapters.azure.plugin import make_adapter
from polybus.adapters.azure.provisioning import EmulatorAdmin
from polybus.core.bus import Bus
from polybus.core.contract import Delivery, DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import ValidationError
from polybus.core.events import new_event

FAST_RETRY = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


@pytest.fixture
def adapter(fast_emulator: EventGridEmulator) -> Iterator[AzureAdapter]:
    """A pull-mode adapter on the fast emulator."""
    made = make_adapter(
        {"endpoint": fast_emulator.endpoint, "key": fast_emulator.key, "admin": True}
    )
    assert isinstance(made, AzureAdapter)
    yield made
    made.close()


def _receive(adapter: AzureAdapter, sub: str, n: int, dead: bool = False) -> list[Delivery]:
    out: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        read = adapter.receive_dead_letters if dead else adapter.receive
        out.extend(read(sub, n - len(out), 0.2))
    return out


def test_copy_stamps_round_trip_and_leave_the_event_clean() -> None:
    """Stamped extensions are read back and removed; the hidden first delivery is not an attempt."""
    original = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "t",
        "keep": "x",
        "data": {"a": 1},
    }
    stamped = stamp_copy(dict(original), 10, 2.0)
    clean, state = take_copy_state(stamped)
    assert clean == original
    assert state.attempts_before == 10 and state.not_before_ms is not None
    assert state.must_hide(1) and not state.must_hide(2)
    assert state.attempt(2) == 11
    assert 1.0 < state.wait_left() <= 2.0
    assert CopyState(10).attempt(1) == 11 and not CopyState(10).must_hide(1)
    assert take_copy_state(original) == (original, CopyState())
    with pytest.raises(ValidationError):
        take_copy_state({**original, "polybusattempt": "ten"})


def test_twelve_attempts_through_the_bus_then_dead_lettered(
    adapter: AzureAdapter, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """max_delivery_attempts=12: 12 handler calls on the unchanged event, then dead-lettered; counts add up."""
    topic, sub = name("twelve"), name("sub")
    bus = Bus(adapter)
    seen: list[dict[str, object]] = []

    def handler(event: CloudEvent) -> None:
        seen.append(event.get_attributes())
        raise RuntimeError("always")

    policy = DeliveryPolicy(max_delivery_attempts=12, retry=FAST_RETRY)
    subscription = bus.subscribe(sub, handler, topic=topic, policy=policy)
    native = fast_admin.pull_subscription(topic, native_name(sub))
    assert native["maxDeliveryCount"] == 10
    event = new_event("com.example.work", "/w", {"n": 1}, extensions={"tenant": "t1"})
    bus.publish(event, topic=topic)
    deadline = time.monotonic() + 20
    while subscription.stats.dead_lettered < 1 and time.monotonic() < deadline:
        bus.poll(sub, timeout=0.2)
    stats = subscription.stats
    assert len(seen) == 12
    assert (stats.delivered, stats.retried, stats.dead_lettered) == (12, 11, 1)
    assert all(attrs == event.get_attributes() for attrs in seen)  # no redelivery extensions
    [dead] = _receive(adapter, sub, 1, dead=True)
    assert dead.event.get_id() == event.get_id()
    dead.ack()


def test_redelivered_copies_do_not_reach_other_subscriptions(
    adapter: AzureAdapter, name: Callable[[str], str]
) -> None:
    """Copies go to the failing subscription's own topic: a sibling subscription sees the event once."""
    topic, failing, sibling = name("shared"), name("failing"), name("sibling")
    adapter.provision(
        SubscriptionSpec(failing, topic, policy=DeliveryPolicy(max_delivery_attempts=11))
    )
    adapter.provision(SubscriptionSpec(sibling, topic))
    adapter.publish(topic, [new_event("com.example.x", "/x")])
    for attempt in range(1, 12):
        [delivery] = _receive(adapter, failing, 1)
        assert delivery.attempt == attempt
        delivery.nack()
    [dead] = _receive(adapter, failing, 1, dead=True)
    dead.ack()
    [once] = _receive(adapter, sibling, 1)
    once.ack()
    assert adapter.receive(sibling, 10, 0.3) == []


def test_delayed_copy_is_hidden_once_without_costing_an_attempt(
    adapter: AzureAdapter, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """A nack with a delay on the native 10th delivery: the copy is released once, then attempt 11."""
    topic, sub = name("delay"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(max_delivery_attempts=20)))
    adapter.publish(topic, [new_event("com.example.d", "/d")])
    for _ in range(9):
        [delivery] = _receive(adapter, sub, 1)
        delivery.nack()
    [tenth] = _receive(adapter, sub, 1)
    assert tenth.attempt == 10
    tenth.nack(5.0)
    [copy] = _receive(adapter, sub, 1)  # the fast emulator scales the 10 s release to 10 ms
    assert copy.attempt == 11
    copy.ack()
    copies = fast_admin.pull_subscription(native_name(f"{sub}-redelivery"), REDELIVERY_SUBSCRIPTION)
    assert copies["maxDeliveryCount"] == 10


def test_delete_subscription_removes_the_redelivery_topic(
    adapter: AzureAdapter, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """delete_subscription also deletes the private redelivery topic."""
    topic, sub = name("gone"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(max_delivery_attempts=15)))
    redelivery = native_name(f"{sub}-redelivery")
    fast_admin.pull_subscription(redelivery, REDELIVERY_SUBSCRIPTION)
    adapter.delete_subscription(sub)
    with pytest.raises(Exception, match="404"):
        fast_admin.pull_subscription(redelivery, REDELIVERY_SUBSCRIPTION)
