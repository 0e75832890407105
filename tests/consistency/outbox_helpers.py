"""Shared helpers of the outbox, relay, journal and replay tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.events import new_event

business = MetaData()
orders = Table(
    "orders",
    business,
    Column("id", Integer, primary_key=True),
    Column("key", String(50), nullable=False),
)


def order_event(n: int, key: str | None = None, topic_hint: str = "orders") -> CloudEvent:
    """An order.placed event for order `n`, keyed by `key` (no partitionkey when None)."""
    extensions = {} if key is None else {"partitionkey": key}
    return new_event("order.placed", f"/{topic_hint}", {"n": n}, id=f"order-{n}", extensions=extensions)


def memory_bus() -> Bus:
    """A Bus over a fresh in-memory adapter."""
    return Bus(MemoryBus())


def collect(bus: Bus, name: str = "all", topic: str = "orders") -> list[CloudEvent]:
    """Subscribe `name` to `topic`; returns the list its handler appends to."""
    seen: list[CloudEvent] = []
    bus.subscribe(name, seen.append, topic=topic)
    return seen


class FlakyBus(Bus):
    """A Bus whose publish fails while `failing()` says so (a real memory adapter underneath)."""

    def __init__(self, failing: Callable[[], bool]) -> None:
        super().__init__(MemoryBus())
        self.failing = failing
        self.calls = 0

    def publish(self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC) -> None:
        """Fail when told to, else publish."""
        self.calls += 1
        if self.failing():
            raise ConnectionError("provider unreachable")
        super().publish(events, topic)


def create_business(engine: Engine) -> None:
    """Create the business table of the tests."""
    business.create_all(engine)
