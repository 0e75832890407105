"""The portable lag gauge: backlog_stats on every provider against a known state."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polybus.adapters import connect
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.contract import (
    BacklogStats,
    DeliveryPolicy,
    SubscriptionSpec,
    SupportsBacklog,
)
from polybus.core.events import new_event

PROVIDERS = ["memory", "local", "aws", "gcp", "azure"]
N = 3
WAIT = 0.5  # seconds between publishing and asking for the age


@pytest.fixture(params=PROVIDERS)
def bus(request: pytest.FixtureRequest, polybus_config: Callable[[str], Path]) -> Iterator[Bus]:
    """A bus on each provider (the emulators through the shipped fixtures)."""
    name = request.param
    if name == "memory":
        made = Bus(MemoryBus())
    else:
        pytest.importorskip(
            {
                "local": "sqlite3",
                "aws": "boto3",
                "gcp": "google.cloud.pubsub_v1",
                "azure": "azure.eventgrid",
            }[name]
        )
        made = connect(polybus_config(name))
    yield made
    made.close()


def _stats(bus: Bus, name: str) -> BacklogStats:
    assert isinstance(bus.adapter, SupportsBacklog)
    return bus.adapter.backlog_stats(name)


def _provision(bus: Bus, topic: str) -> str:
    name = f"lag-{uuid.uuid4().hex[:8]}"
    spec = SubscriptionSpec(name, topic, None, DeliveryPolicy(max_delivery_attempts=3))
    bus.adapter.provision(spec)
    return name


def _eventually(
    read: Callable[[], BacklogStats], ok: Callable[[BacklogStats], bool]
) -> BacklogStats:
    """The figures, re-read until `ok` (the cloud counts are approximate and lag a little)."""
    deadline = time.monotonic() + 10.0
    stats = read()
    while not ok(stats) and time.monotonic() < deadline:
        time.sleep(0.1)
        stats = read()
    return stats


def test_published_unconsumed_events_are_the_backlog(bus: Bus) -> None:
    """Publish N, consume none: backlog N, nothing in flight, no dead letters, age >= the wait."""
    topic = f"lagt-{uuid.uuid4().hex[:8]}"
    name = _provision(bus, topic)
    before = time.time()
    bus.publish([new_event("com.example.lag", "/tests", {"n": i}) for i in range(N)], topic)
    time.sleep(WAIT)
    stats = _eventually(lambda: _stats(bus, name), lambda s: s.undelivered == N)
    assert (stats.subscription, stats.undelivered, stats.dead_letters) == (name, N, 0)
    assert stats.in_flight in (0, None)
    if bus.provider != "aws":  # aws: a CloudWatch metric, which moto never has (documented: None)
        assert stats.oldest_age is not None
        assert WAIT <= stats.oldest_age <= time.time() - before + 1.0
    else:
        assert stats.oldest_age is None


def test_leased_event_is_in_flight_and_a_dead_letter_is_depth_one(bus: Bus) -> None:
    """A leased event counts in flight; one dead-lettered poison event is dead-letter depth 1."""
    topic = f"lagt-{uuid.uuid4().hex[:8]}"
    name = _provision(bus, topic)
    bus.publish([new_event("com.example.poison", "/tests", {"bad": True})], topic)
    deliveries = []
    deadline = time.monotonic() + 15.0
    while not deliveries and time.monotonic() < deadline:
        deliveries = bus.adapter.receive(name, 1, 1.0)
    assert len(deliveries) == 1
    leased = _eventually(lambda: _stats(bus, name), lambda s: s.in_flight in (1, None))
    assert (leased.undelivered, leased.in_flight) in ((0, 1), (0, None))
    deliveries[0].dead_letter("poison: cannot be handled")
    dead = _eventually(lambda: _stats(bus, name), lambda s: s.dead_letters == 1)
    assert (dead.undelivered, dead.in_flight, dead.dead_letters) == (0, 0, 1)
    assert dead.oldest_age is None
