"""The README's App service and its ten-line test, run by the suite."""

from __future__ import annotations

from pathlib import Path

from polybus import new_event
from polybus.testing import TestBus

REPO = Path(__file__).resolve().parents[1]


def test_readme_quotes_the_app_and_its_test() -> None:
    """The service and the test shown in the README are the files the suite runs."""
    readme = (REPO / "README.md").read_text()
    service = (REPO / "examples" / "inventory_app.py").read_text().split('"""', 2)[2].strip()
    assert service in readme
    test_source = Path(__file__).read_text()
    body = test_source.split("# README test begins\n", 1)[1].split("# README test ends", 1)[0]
    assert body.strip() in readme


# README test begins
from examples.inventory_app import app  # noqa: E402


def test_placed_order_reserves_stock() -> None:
    """An order placed on `orders` makes the service publish a reservation."""
    with TestBus(app) as bus:
        bus.publish(new_event("com.shop.order.placed", "/shop",
                              {"order_id": "o-1", "items": ["sku-1"]}), topic="orders")
        [reserved] = bus.published("inventory")
        assert reserved.get_data() == {"order_id": "o-1", "items": ["sku-1"]}
        assert [o.outcome for o in bus.outcomes("reserve-stock")] == ["acked"]
# README test ends


def test_ignores_other_event_types_and_dead_letters_bad_payloads() -> None:
    """Other types are filtered out; an order without items is dead-lettered with the rule."""
    with TestBus(app) as bus:
        bus.publish(new_event("com.shop.order.cancelled", "/shop", {"order_id": "o-2"}), topic="orders")
        bus.publish(new_event("com.shop.order.placed", "/shop", {"order_id": "o-3"}), topic="orders")
        assert bus.published("inventory") == []
        [outcome] = bus.outcomes("reserve-stock")
        assert outcome.outcome == "dead-lettered"
        assert "data.items" in bus.dead_letters("reserve-stock")[0]
