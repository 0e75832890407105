"""The toy adapter: an in-process queue with modest capabilities, registered by entry point.

It keeps events in polybus's memory bus but declares less than it: no
ordering, no replay, no native filtering (every filter is a residual the bus
evaluates), 1-10 delivery attempts and a 64 KB limit measured on the JSON
bytes it would send. It uses only polybus's public plugin API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus import hookimpl
from polybus.adapters.local.memory import MemoryBus
from polybus.core.capabilities import Capabilities
from polybus.core.contract import Adapter, Delivery, SubscriptionSpec
from polybus.core.filters.dialects import Filter
from polybus.core.filters.native import Compiled
from polybus.core.formats import to_json as event_json
from polybus.core.hookspecs import AdapterInfo, FilterSupport
from polybus.core.sizing import KB, SizeLimit, Sizing

LIMIT = SizeLimit(64 * KB, counted="UTF-8 bytes of the JSON event")
CAPABILITIES = Capabilities(
    ordering=False,
    replay=False,
    native_dead_letter=True,
    native_filters=False,
    delivery_attempts=(1, 10),
    max_event_size=LIMIT.limit,
)


def event_size(event: CloudEvent) -> int:
    """The JSON event's size, as the toy counts it."""
    return len(event_json(event))


def compile_filter(flt: Filter | None) -> Compiled[Any]:
    """The toy evaluates no filter itself: all of it is the residual."""
    return Compiled(None, flt)


class ToyAdapter:
    """An Adapter over an in-memory queue that filters nothing natively."""

    name = "toy"

    def __init__(self) -> None:
        self._queue = MemoryBus()

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Size each event once, then enqueue the batch."""
        LIMIT.check(((e.get_id(), event_size(e)) for e in events), self.name)
        self._queue.publish(topic, events)

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create the queue without a filter; the whole filter comes back as the residual."""
        self._queue.provision(SubscriptionSpec(spec.name, spec.topic, None, spec.policy))
        return compile_filter(spec.filter).residual

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> Sequence[Delivery]:
        """Deliveries from the queue."""
        return self._queue.receive(subscription, max_events, timeout)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> Sequence[Delivery]:
        """Deliveries from the dead-letter queue."""
        return self._queue.receive_dead_letters(subscription, max_events, timeout)

    def delete_subscription(self, subscription: str) -> None:
        """Remove the queue."""
        self._queue.delete_subscription(subscription)

    def close(self) -> None:
        """Drop everything."""
        self._queue.close()


def make_adapter(settings: Mapping[str, Any]) -> Adapter:
    """A ToyAdapter; the toy takes no settings."""
    return ToyAdapter()


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Register the toy adapter."""
    register(
        AdapterInfo(
            name="toy",
            factory=make_adapter,
            description="toy third-party adapter (tests)",
            capabilities=CAPABILITIES,
            sizing=Sizing(LIMIT, event_size),
            filters=FilterSupport(compile_filter, "toy filter (client-side only)"),
        )
    )


