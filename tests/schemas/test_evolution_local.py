"""Three versions of one event, producers and consumers on different versions, on the local adapter."""

from __future__ import annotations

from typing import Any

import pytest

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.events import new_event
from polybus.core.schemas import IncompatibleSchemaError, SchemaValidationError
from polybus.core.schemas.middleware import SchemaValidation
from polybus.core.schemas.publisher import SchemaPublisher
from tests.schemas.evolution import EXPECTED, TYPE, V3, order_registry, produced, readers


@pytest.mark.parametrize("encoding", ["json", "avro", "protobuf"])
def test_every_consumer_version_reads_every_producer_version(encoding: str) -> None:
    """v1, v2 and v3 consumers each read v1, v2 and v3 events: unknown fields ignored, defaults and upcasts applied."""
    registry = order_registry()
    by_version = readers(registry)
    validation = SchemaValidation(
        registry, readers={f"consumer-v{v}": r for v, r in by_version.items()}
    )
    adapter = MemoryBus()
    bus = Bus(adapter, hooks=plugin_manager([validation]).hook)
    seen: dict[int, dict[str, Any]] = {v: {} for v in by_version}
    for version, reader in by_version.items():

        def handle(event: Any, version: int = version, reader: Any = reader) -> None:
            model = reader.read(event)
            seen[version][model.orderId] = model

        bus.subscribe(f"consumer-v{version}", handle, topic="orders")
    SchemaPublisher(bus, registry, encoding=encoding, topic="orders").publish(produced(registry))
    bus.drain(idle=0.05)
    assert seen == EXPECTED
    assert all(sub.stats.acked == 3 for sub in bus.subscriptions.values())
    if encoding != "json":
        [event] = [e for e in produced(registry) if e.get_data()["orderId"] == "o-1"]
        encoded = SchemaPublisher(bus, registry, encoding=encoding).encode(event)
        assert (
            isinstance(encoded.get_data(), bytes)
            and encoded.get_datacontenttype() == f"application/{encoding}"
        )
    bus.close()


def test_invalid_data_is_rejected_before_publish_and_dead_lettered_on_receive() -> None:
    """A publisher with validation refuses bad data; a consumer with validation dead-letters it with the report."""
    registry = order_registry()
    adapter = MemoryBus()
    checked = Bus(adapter, hooks=plugin_manager([SchemaValidation(registry)]).hook)
    unchecked = Bus(adapter)
    handled: list[Any] = []
    checked.subscribe("orders-in", handled.append, topic="orders")
    bad = new_event(TYPE, "/p", {"orderId": 7, "amount": "ten"})
    with pytest.raises(SchemaValidationError) as info:
        checked.publish(bad, topic="orders")
    assert {p.field for p in info.value.problems} == {"data.orderId", "data.amount"}
    unchecked.publish(bad, topic="orders")
    checked.drain(idle=0.05)
    assert handled == []
    stats = checked.subscriptions["orders-in"].stats
    assert stats.dead_lettered == 1
    [reason] = adapter.dead_letter_reasons("orders-in")
    assert (
        "rejected by middleware" in reason and "data.amount" in reason and "data.orderId" in reason
    )
    checked.close()


def test_missing_required_field_for_a_reader_dead_letters_with_the_field_named() -> None:
    """A v1 event lacking what an unforgiving reader needs is refused with the field named, not dropped."""
    from dataclasses import dataclass

    @dataclass
    class NeedsCustomer:
        orderId: str
        customerId: str

    registry = order_registry()
    from polybus.core.schemas.reader import TolerantReader

    validation = SchemaValidation(
        registry, readers={"strict": TolerantReader(NeedsCustomer, registry)}
    )
    adapter = MemoryBus()
    bus = Bus(adapter, hooks=plugin_manager([validation]).hook)
    bus.subscribe("strict", lambda e: None, topic="orders")
    SchemaPublisher(bus, registry, encoding="avro", topic="orders").publish(produced(registry)[0])
    bus.drain(idle=0.05)
    [reason] = adapter.dead_letter_reasons("strict")
    assert "data.customerId" in reason and "required field is missing" in reason
    bus.close()


def test_a_fourth_version_removing_a_field_is_refused_under_full_compatibility() -> None:
    """Dropping `amount` (no default for v1-v3 readers) breaks forward compatibility: refused, reported."""
    registry = order_registry()
    v4 = {**V3, "fields": [f for f in V3["fields"] if f["name"] != "amount"]}
    with pytest.raises(IncompatibleSchemaError) as info:
        registry.register(TYPE, v4, kind="avro")
    assert [(p.field, p.value) for p in info.value.problems] == [
        ("$.amount", "v1 reads v4"),
        ("$.amount", "v2 reads v4"),
        ("$.amount", "v3 reads v4"),
    ]
