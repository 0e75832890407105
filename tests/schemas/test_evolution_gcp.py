"""The three-version evolution and validation middleware on the gcp adapter, over the Pub/Sub emulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from polybus.adapters import plugin_manager
from polybus.core.bus import Bus
from polybus.core.events import new_event
from polybus.core.schemas.middleware import SchemaValidation
from polybus.core.schemas.publisher import SchemaPublisher
from tests.schemas.evolution import EXPECTED, TYPE, order_registry, produced, readers


def _wait(bus: Bus, done: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll every subscription until `done()` or the limit (a bound, not an assertion on time)."""
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        for name in list(bus.subscriptions):
            bus.poll(name, timeout=0.2)


def test_mixed_versions_and_encodings_over_pubsub(gcp_adapter_factory: Callable[[], Any]) -> None:
    """v1 JSON, v2 Avro and v3 Protobuf producers; v1, v2, v3 consumers each read all three."""
    registry = order_registry()
    by_version = readers(registry)
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    bus = Bus(
        gcp_adapter_factory(),
        hooks=plugin_manager(
            [
                SchemaValidation(
                    registry, readers={f"{topic}-v{v}": r for v, r in by_version.items()}
                )
            ]
        ).hook,
    )
    seen: dict[int, dict[str, Any]] = {v: {} for v in by_version}
    for version, reader in by_version.items():

        def handle(event: Any, version: int = version, reader: Any = reader) -> None:
            model = reader.read(event)
            seen[version][model.orderId] = model

        bus.subscribe(f"{topic}-v{version}", handle, topic=topic)
    events = produced(registry)
    for event, encoding in zip(events, ("json", "avro", "protobuf"), strict=True):
        SchemaPublisher(bus, registry, encoding=encoding, topic=topic).publish(event)
    _wait(bus, lambda: sum(len(s) for s in seen.values()) == 9)
    assert seen == EXPECTED


def test_invalid_event_is_dead_lettered_with_the_report_over_pubsub(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """An unchecked producer's bad event reaches a checking consumer, which dead-letters it with the reason."""
    registry = order_registry()
    adapter = gcp_adapter_factory()
    checked = Bus(adapter, hooks=plugin_manager([SchemaValidation(registry)]).hook)
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    handled: list[Any] = []
    sub = checked.subscribe(f"{topic}-in", handled.append, topic=topic)
    Bus(adapter).publish(new_event(TYPE, "/p", {"orderId": "o-9"}), topic=topic)
    _wait(checked, lambda: sub.stats.dead_lettered == 1)
    assert handled == [] and sub.stats.dead_lettered == 1
    assert sub.stats.last_error is not None and "data.amount" in sub.stats.last_error
    dead = adapter.receive_dead_letters(f"{topic}-in", 1, timeout=10.0)
    assert [d.event.get_data() for d in dead] == [{"orderId": "o-9"}]
    for delivery in dead:
        delivery.ack()
