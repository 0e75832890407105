"""`polybus demo`: a shopping-cart flow run as services on the configured bus.

cart checkout -> order placed -> inventory reserved + payment charged -> order
confirmed. Each service only publishes and subscribes; none names a provider.
The trace shows every hop with its latency (handled time minus event time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from cloudevents.core.v1.event import CloudEvent
from rich.console import Console
from rich.table import Table

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.core.bus import Bus
from polybus.core.events import new_event

TOPIC = "shop"
SOURCE = "/polybus/demo"


@dataclass(frozen=True)
class Hop:
    """One event handled by one service."""

    service: str
    event_type: str
    order: str
    at_ms: float
    hop_ms: float


class ShopFlow:
    """The demo's services, wired to a bus; `trace` records every hop."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.trace: list[Hop] = []
        self.confirmed: set[str] = set()
        self.notified: set[str] = set()
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._done: dict[str, set[str]] = {}
        self._all_confirmed = threading.Event()
        self._expected = 0
        subscriptions = (
            ("orders", "com.shop.cart.checked_out", self.place_order),
            ("inventory", "com.shop.order.placed", self.reserve_stock),
            ("payments", "com.shop.order.placed", self.charge_payment),
            ("confirmations", None, self.confirm),
            ("notifications", "com.shop.order.confirmed", self.notify),
        )
        for name, event_type, handler in subscriptions:
            flt: Any = (
                {"exact": {"type": event_type}}
                if event_type
                else {
                    "any": [
                        {"exact": {"type": "com.shop.inventory.reserved"}},
                        {"exact": {"type": "com.shop.payment.charged"}},
                    ]
                }
            )
            bus.subscribe(f"demo-{name}", self._traced(name, handler), topic=TOPIC, filter=flt)

    def _traced(self, service: str, handler: Any) -> Any:
        def run(event: CloudEvent) -> None:
            now = datetime.now(UTC)
            sent = event.get_time() or now
            hop = Hop(
                service,
                event.get_type(),
                event.get_subject() or "",
                (time.monotonic() - self._started) * 1000,
                (now - sent).total_seconds() * 1000,
            )
            with self._lock:
                self.trace.append(hop)
            handler(event)

        return run

    def _emit(self, event_type: str, order: str, data: dict[str, Any]) -> None:
        self.bus.publish(new_event(event_type, SOURCE, data, subject=order), topic=TOPIC)

    def checkout(self, order: str, items: list[str], amount: float) -> None:
        """The cart service: a customer checks out."""
        self._expected += 1
        self._emit("com.shop.cart.checked_out", order, {"items": items, "amount": amount})

    def place_order(self, event: CloudEvent) -> None:
        """Orders: a checkout becomes an order."""
        self._emit("com.shop.order.placed", event.get_subject() or "", _data(event))

    def reserve_stock(self, event: CloudEvent) -> None:
        """Inventory: reserve the order's items."""
        self._emit("com.shop.inventory.reserved", event.get_subject() or "", {"reserved": True})

    def charge_payment(self, event: CloudEvent) -> None:
        """Payments: charge the order's amount."""
        amount = _data(event)["amount"]
        self._emit("com.shop.payment.charged", event.get_subject() or "", {"charged": amount})

    def confirm(self, event: CloudEvent) -> None:
        """Orders: confirm once both stock and payment are done."""
        order = event.get_subject() or ""
        with self._lock:
            done = self._done.setdefault(order, set())
            done.add(event.get_type())
            ready = len(done) == 2 and order not in self.confirmed
            if ready:
                self.confirmed.add(order)
        if ready:
            self._emit("com.shop.order.confirmed", order, {"status": "confirmed"})

    def notify(self, event: CloudEvent) -> None:
        """Notifications: tell the customer; the flow ends here."""
        with self._lock:
            self.notified.add(event.get_subject() or "")
            if len(self.notified) == self._expected:
                self._all_confirmed.set()

    def wait(self, timeout: float) -> bool:
        """Block until every checked-out order's confirmation was handled."""
        return self._all_confirmed.wait(timeout)


def _data(event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    if not isinstance(data, dict):
        raise TypeError(f"event {event.get_id()} carries no JSON object")
    return data


def run_demo(bus: Bus, orders: int = 3, timeout: float = 30.0) -> ShopFlow:
    """Run the flow for `orders` orders with consumer threads; returns the finished flow."""
    flow = ShopFlow(bus)
    bus.start()
    try:
        for i in range(1, orders + 1):
            flow.checkout(f"order-{i}", [f"sku-{i}", "sku-gift"], 10.0 * i)
        flow.wait(timeout)
    finally:
        bus.stop()
    return flow


@click.command("demo")
@click.option("--orders", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.pass_context
@friendly_errors
def demo_command(ctx: click.Context, orders: int, timeout: float) -> None:
    """Run the shopping-cart flow as services on the bus and print the event trace."""
    console = Console()
    with connect(ctx.obj["config_path"]) as bus:
        console.print(f"polybus demo on provider [bold]{bus.provider}[/], {orders} order(s)")
        flow = run_demo(bus, orders, timeout)
    table = Table("t (ms)", "service", "handled event", "order", "hop (ms)")
    for hop in sorted(flow.trace, key=lambda h: h.at_ms):
        table.add_row(
            f"{hop.at_ms:8.1f}", hop.service, hop.event_type, hop.order, f"{hop.hop_ms:6.1f}"
        )
    console.print(table)
    missing = orders - len(flow.notified)
    if missing:
        raise click.ClickException(f"{missing} order(s) not confirmed within {timeout}s")
    total = max(h.at_ms for h in flow.trace)
    console.print(f"[green]{len(flow.notified)} order(s) confirmed[/] in {total:.1f} ms")
