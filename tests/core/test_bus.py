"""Bus's own consumer threads (the API under App) keep running whatever a handler raises."""

from __future__ import annotations

import time
from typing import Any

import pytest

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.events import new_event


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt])
def test_bus_consumer_threads_survive_base_exceptions(exc: type[BaseException]) -> None:
    """Bus.start's threads treat a handler's SystemExit/KeyboardInterrupt as a failure, not death."""
    bus = Bus(MemoryBus())
    calls: dict[str, int] = {}
    policy = DeliveryPolicy(retry=RetryPolicy(initial_backoff=0, max_backoff=0, jitter=0))

    def handler(event: Any) -> None:
        calls[event.get_id()] = calls.get(event.get_id(), 0) + 1
        if calls[event.get_id()] == 1:
            raise exc("handler gave up")

    sub = bus.subscribe("s", handler, policy=policy)
    events = [new_event("com.x", "/s", {"n": i}) for i in range(40)]
    bus.publish(events)
    bus.start(concurrency=2)
    deadline = time.monotonic() + 20
    while sub.stats.acked < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    bus.stop()
    assert (sub.stats.acked, sub.stats.retried, sub.stats.dead_lettered) == (40, 40, 0)
