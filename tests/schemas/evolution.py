"""The three-version order event used by the evolution tests, its readers and upcasters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polybus.core.events import EventFactory
from polybus.core.schemas import SchemaRegistry
from polybus.core.schemas.reader import TolerantReader
from polybus.core.schemas.upcasting import Upcasters

TYPE = "com.example.order.placed"


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "com.example",
        "fields": list(fields),
    }


V1 = _record({"name": "orderId", "type": "string"}, {"name": "amount", "type": "double"})
V2 = _record(
    *V1["fields"],
    {"name": "currency", "type": "string", "default": "EUR"},
    {"name": "paid", "type": "boolean", "default": False},
)
V3 = _record(
    *V2["fields"],
    {"name": "status", "type": "string", "default": "open"},
    {"name": "customerId", "type": ["null", "string"], "default": None},
)
PAYLOADS: dict[int, dict[str, Any]] = {
    1: {"orderId": "o-1", "amount": 10.5},
    2: {"orderId": "o-2", "amount": 20.0, "currency": "USD", "paid": True},
    3: {
        "orderId": "o-3",
        "amount": 30.0,
        "currency": "GBP",
        "paid": True,
        "status": "shipped",
        "customerId": "c-9",
    },
}


def order_registry() -> SchemaRegistry:
    """A registry holding the three versions under full compatibility."""
    registry = SchemaRegistry("memory:")
    registry.configure(TYPE, compatibility="full_transitive", topics=["orders"])
    for definition in (V1, V2, V3):
        registry.register(TYPE, definition, kind="avro")
    return registry


def order_upcasters() -> Upcasters:
    """v1→v2 states the old implicit currency; v2→v3 derives status from paid."""
    upcasters = Upcasters()
    upcasters.add(TYPE, 1, lambda d: {**d, "currency": "EUR", "paid": False})
    upcasters.add(TYPE, 2, lambda d: {**d, "status": "paid" if d.get("paid") else "open"})
    return upcasters


@dataclass(frozen=True)
class OrderV1:
    """What a consumer built against v1 needs."""

    orderId: str
    amount: float


@dataclass(frozen=True)
class OrderV2:
    """A consumer built against v2."""

    orderId: str
    amount: float
    currency: str = "EUR"
    paid: bool = False


@dataclass(frozen=True)
class OrderV3:
    """A consumer built against v3, reading older data through upcasters."""

    orderId: str
    amount: float
    currency: str
    status: str
    customerId: str | None = None


def readers(registry: SchemaRegistry) -> dict[int, TolerantReader[Any]]:
    """One tolerant reader per consumer version; v3 upcasts older data first."""
    return {
        1: TolerantReader(OrderV1, registry),
        2: TolerantReader(OrderV2, registry),
        3: TolerantReader(OrderV3, registry, order_upcasters(), version=3),
    }


def produced(registry: SchemaRegistry) -> list[Any]:
    """One event per producer version, each naming its schema version."""
    factory = EventFactory()
    return [
        factory.new(TYPE, f"/producers/v{v}", PAYLOADS[v], dataschema=registry.get(TYPE, v).uri)
        for v in (1, 2, 3)
    ]


EXPECTED: dict[int, dict[str, Any]] = {
    1: {
        "o-1": OrderV1("o-1", 10.5),
        "o-2": OrderV1("o-2", 20.0),
        "o-3": OrderV1("o-3", 30.0),
    },
    2: {
        "o-1": OrderV2("o-1", 10.5),
        "o-2": OrderV2("o-2", 20.0, "USD", True),
        "o-3": OrderV2("o-3", 30.0, "GBP", True),
    },
    3: {
        "o-1": OrderV3("o-1", 10.5, "EUR", "open"),
        "o-2": OrderV3("o-2", 20.0, "USD", "paid"),
        "o-3": OrderV3("o-3", 30.0, "GBP", "shipped", "c-9"),
    },
}
