"""`polybus demo`: a shopping-cart flow run as services on the configured bus.

cart checkout -> order placed -> inventory reserved + payment charged -> order
confirmed. Each of the five services (cart, orders, inventory, payments,
notifications) is a polybus.App; they share one bus here so the embedded
in-memory bus works too. None names a provider.
The trace shows every hop with its latency (handled time minus event time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from cloudevents.core.v1.event import CloudEvent
from rich.console import Console
from rich.table import Table

from polybus.adapters import connect
from polybus.app import App
from polybus.cli.errors import friendly_errors
from polybus.core.bus import Bus
from polybus.core.events import new_event
from polybus.core.runtime import Context

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
    """The demo's five services as polybus Apps on one bus; `trace` records every hop.

    cart (publishes checkouts) -> orders (places orders, confirms them) ->
    inventory and payments (in parallel) -> notifications.
    """

    def __init__(self) -> None:
        self.trace: list[Hop] = []
        self.confirmed: set[str] = set()
        self.notified: set[str] = set()
        self._started = time.monotonic()
        self._done: dict[str, set[str]] = {}
        self._expected = 0
        self._all_notified = asyncio.Event()
        self.cart = App("cart")
        self.orders = App("orders")
        self.inventory = App("inventory")
        self.payments = App("payments")
        self.notifications = App("notifications")
        self._declare()

    @property
    def apps(self) -> list[App]:
        """The five services."""
        return [self.cart, self.orders, self.inventory, self.payments, self.notifications]

    def _declare(self) -> None:
        def only(event_type: str) -> str:
            return f"type = '{event_type}'"

        reserved_or_charged = "type IN ('com.shop.inventory.reserved', 'com.shop.payment.charged')"
        self.orders.subscriber(
            "demo-orders", topic=TOPIC, filter=only("com.shop.cart.checked_out")
        )(self._traced("orders", self.place_order))
        self.orders.subscriber("demo-confirmations", topic=TOPIC, filter=reserved_or_charged)(
            self._traced("confirmations", self.confirm)
        )
        self.inventory.subscriber(
            "demo-inventory", topic=TOPIC, filter=only("com.shop.order.placed")
        )(self._traced("inventory", self.reserve_stock))
        self.payments.subscriber(
            "demo-payments", topic=TOPIC, filter=only("com.shop.order.placed")
        )(self._traced("payments", self.charge_payment))
        self.notifications.subscriber(
            "demo-notifications", topic=TOPIC, filter=only("com.shop.order.confirmed")
        )(self._traced("notifications", self.notify))

    def _traced(
        self, service: str, handler: Callable[[CloudEvent, Context], Awaitable[None]]
    ) -> Callable[[CloudEvent, Context], Awaitable[None]]:
        async def run(event: CloudEvent, ctx: Context) -> None:
            now = datetime.now(UTC)
            sent = event.get_time() or now
            self.trace.append(
                Hop(
                    service,
                    event.get_type(),
                    event.get_subject() or "",
                    (time.monotonic() - self._started) * 1000,
                    (now - sent).total_seconds() * 1000,
                )
            )
            await handler(event, ctx)

        return run

    @staticmethod
    async def _emit(ctx: Context | App, event_type: str, order: str, data: dict[str, Any]) -> None:
        await ctx.publish(new_event(event_type, SOURCE, data, subject=order), topic=TOPIC)

    async def checkout(self, order: str, items: list[str], amount: float) -> None:
        """The cart service: a customer checks out."""
        self._expected += 1
        await self._emit(
            self.cart, "com.shop.cart.checked_out", order, {"items": items, "amount": amount}
        )

    async def place_order(self, event: CloudEvent, ctx: Context) -> None:
        """Orders: a checkout becomes an order."""
        await self._emit(ctx, "com.shop.order.placed", event.get_subject() or "", _data(event))

    async def reserve_stock(self, event: CloudEvent, ctx: Context) -> None:
        """Inventory: reserve the order's items."""
        await self._emit(
            ctx, "com.shop.inventory.reserved", event.get_subject() or "", {"reserved": True}
        )

    async def charge_payment(self, event: CloudEvent, ctx: Context) -> None:
        """Payments: charge the order's amount."""
        amount = _data(event)["amount"]
        await self._emit(
            ctx, "com.shop.payment.charged", event.get_subject() or "", {"charged": amount}
        )

    async def confirm(self, event: CloudEvent, ctx: Context) -> None:
        """Orders: confirm once both stock and payment are done (handlers share the loop)."""
        order = event.get_subject() or ""
        done = self._done.setdefault(order, set())
        done.add(event.get_type())
        if len(done) == 2 and order not in self.confirmed:
            self.confirmed.add(order)
            await self._emit(ctx, "com.shop.order.confirmed", order, {"status": "confirmed"})

    async def notify(self, event: CloudEvent, ctx: Context) -> None:
        """Notifications: tell the customer; the flow ends here."""
        self.notified.add(event.get_subject() or "")
        if len(self.notified) == self._expected:
            self._all_notified.set()

    async def run(self, bus: Bus, orders: int, timeout: float) -> None:
        """Start the services on `bus`, check out `orders` orders, wait, stop the services."""
        for app in self.apps:
            await app.start(bus=bus)
        try:
            for i in range(1, orders + 1):
                await self.checkout(f"order-{i}", [f"sku-{i}", "sku-gift"], 10.0 * i)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_notified.wait(), timeout)
        finally:
            for app in self.apps:
                await app.stop()  # the shared bus stays open: the caller closes it


def _data(event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    if not isinstance(data, dict):
        raise TypeError(f"event {event.get_id()} carries no JSON object")
    return data


def run_demo(bus: Bus, orders: int = 3, timeout: float = 30.0) -> ShopFlow:
    """Run the flow for `orders` orders; returns the finished flow (the bus stays open)."""
    flow = ShopFlow()
    asyncio.run(flow.run(bus, orders, timeout))
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
