"""Lease renewal and stale deliveries on both local buses (memory and durable)."""

from __future__ import annotations

import threading
import time

from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy, RenewableDelivery, RetryPolicy, SubscriptionSpec
from polybus.core.events import new_event
from tests.local.conftest import LocalBus

SHORT = DeliveryPolicy(max_delivery_attempts=3, retry=RetryPolicy(0, 0), ack_deadline=0.3)


def _one(bus: LocalBus, policy: DeliveryPolicy = SHORT) -> None:
    bus.provision(SubscriptionSpec("s", "t", None, policy))
    bus.publish("t", [new_event("com.x", "/x", {"n": 1})])


def test_deliveries_are_renewable(local_bus: LocalBus) -> None:
    """Every delivery of the local bus offers `extend` (core.contract.RenewableDelivery)."""
    _one(local_bus)
    [delivery] = local_bus.receive("s", 10, 1.0)
    assert isinstance(delivery, RenewableDelivery)
    delivery.ack()


def test_extend_keeps_the_delivery_invisible(local_bus: LocalBus) -> None:
    """A delivery renewed before its lease ends is not delivered again, for several lease lengths."""
    _one(local_bus)
    [delivery] = local_bus.receive("s", 10, 1.0)
    for _ in range(4):  # 4 x 0.15 s = twice the 0.3 s lease
        delivery.extend(0.3)
        time.sleep(0.15)
        assert local_bus.receive("s", 10, 0.0) == []
    delivery.ack()
    assert local_bus.receive("s", 10, 0.4) == []
    assert local_bus.backlog("s") == 0


def test_a_lease_not_renewed_expires(local_bus: LocalBus) -> None:
    """Without renewal the delivery comes back after its lease, with the next attempt number."""
    _one(local_bus)
    [first] = local_bus.receive("s", 10, 1.0)
    [second] = local_bus.receive("s", 10, 2.0)
    assert (first.attempt, second.attempt) == (1, 2)
    second.ack()


def test_a_stale_delivery_cannot_be_resurrected_or_settled(local_bus: LocalBus) -> None:
    """After redelivery, extend/nack/ack/dead_letter of the old delivery change nothing."""
    _one(local_bus)
    [stale] = local_bus.receive("s", 10, 1.0)
    [current] = local_bus.receive("s", 10, 2.0)  # the lease expired: redelivered
    stale.extend(60)
    stale.nack()
    stale.dead_letter("late")
    stale.ack()
    assert local_bus.receive("s", 10, 0.0) == []  # `current` still holds it
    assert local_bus.dead_letter_reasons("s") == []
    current.nack()
    [third] = local_bus.receive("s", 10, 1.0)
    assert third.attempt == 3  # counted once per delivery, not per settle
    third.ack()
    assert local_bus.backlog("s") == 0


def test_extend_of_a_stale_delivery_does_not_shorten_the_current_lease(
    local_bus: LocalBus,
) -> None:
    """Extending an old delivery to 0 s does not expose the event its new holder renews."""
    _one(local_bus)
    [stale] = local_bus.receive("s", 10, 1.0)
    [current] = local_bus.receive("s", 10, 2.0)
    current.extend(30)
    stale.extend(0)
    assert local_bus.receive("s", 10, 0.5) == []
    current.ack()


def test_a_lease_expiring_on_the_last_attempt_dead_letters(local_bus: LocalBus) -> None:
    """A delivery that times out on its last allowed attempt goes to the dead letters, once."""
    _one(local_bus)
    held = [local_bus.receive("s", 10, 2.0) for _ in range(3)]
    assert [d.attempt for [d] in held] == [1, 2, 3]
    assert local_bus.receive("s", 10, 0.6) == []
    assert local_bus.dead_letter_reasons("s") == ["lease expired on the last allowed attempt (3)"]
    for [d] in held:  # late settles of the timed-out deliveries
        d.nack()
        d.dead_letter("late")
    assert len(local_bus.dead_letter_reasons("s")) == 1
    assert local_bus.backlog("s") == 0


def test_a_handler_failing_after_its_lease_runs_max_attempts_times(local_bus: LocalBus) -> None:
    """Issue 14: a slow failing handler with 4 consumers runs 3 times (max attempts), not 21."""
    calls: list[int] = []
    lock = threading.Lock()

    def slow_failure(event: object) -> None:
        with lock:
            calls.append(1)
        time.sleep(0.5)  # longer than the 0.3 s lease
        raise RuntimeError("fails late")

    bus = Bus(local_bus)
    bus.poll_timeout = 0.05
    bus.subscribe("s", slow_failure, topic="t", policy=SHORT)
    bus.publish(new_event("com.x", "/x", {"n": 1}), topic="t")
    bus.start(concurrency=4)
    deadline = time.monotonic() + 10
    while not local_bus.dead_letter_reasons("s") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # room for extra (wrong) redeliveries to show up
    bus.stop()
    assert len(calls) == 3
    assert len(local_bus.dead_letter_reasons("s")) == 1
    assert local_bus.backlog("s") == 0
