"""`polybus demo`: a shopping-cart flow run as services on the configured bus.

cart checkout -> order placed -> inventory reserved + payment charged -> order
confirmed. Each of the five services (cart, orders, inventory, payments,
notifications) is a polybus.App; they share one bus here so the embedded
in-memory bus works too. None names a provider.
The trace shows every hop with its latency (handled time minus event time).
``--trace`` records OpenTelemetry spans (the ``otel`` extra) and prints the
waterfall of one order across the five services; ``--trace-out FILE`` writes
every span as a JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cloudevents.core.v1.event import CloudEvent
from rich.console import Console
from rich.table import Table

from polybus.adapters import connect, plugin_manager
from polybus.app import App
from polybus.cli.errors import friendly_errors
from polybus.core.bus import Bus
from polybus.core.errors import PolybusError
from polybus.core.events import new_event
from polybus.core.runtime import Context
from polybus.core.tracing import Tracing, install
from polybus.core.tracing.memory import MemoryTracing, memory_tracing
from polybus.core.tracing.records import SpanRecord, from_spans, waterfall

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

    def __init__(self, tracer: Any = None) -> None:
        self.tracer = tracer  # an OpenTelemetry tracer: each checkout is the root span of its order
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
        with self._checkout_span(order):
            await self._emit(
                self.cart, "com.shop.cart.checked_out", order, {"items": items, "amount": amount}
            )

    @contextlib.contextmanager
    def _checkout_span(self, order: str) -> Iterator[None]:
        if self.tracer is None:
            yield
            return
        attributes = {"polybus.service": "cart", "polybus.order": order}
        with self.tracer.start_as_current_span(f"checkout {order}", attributes=attributes):
            yield

    def service_of(self, subscription: str) -> str | None:
        """The service (App name) that owns `subscription`."""
        for app in self.apps:
            if any(spec.name == subscription for spec in app.subscribers):
                return app.name
        return None

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


def run_demo(bus: Bus, orders: int = 3, timeout: float = 30.0, tracer: Any = None) -> ShopFlow:
    """Run the flow for `orders` orders; returns the finished flow (the bus stays open)."""
    flow = ShopFlow(tracer)
    asyncio.run(flow.run(bus, orders, timeout))
    return flow


def remove_subscriptions(bus: Bus, apps: list[App]) -> None:
    """Delete the demo's subscriptions (with their queues, rules, dead-letter targets) from the provider."""
    for app in apps:
        for spec in app.subscribers:
            try:
                bus.adapter.delete_subscription(spec.name)
            except PolybusError as exc:  # reported, not raised: the flow's outcome is what counts
                click.echo(f"could not remove subscription {spec.name}: {exc}", err=True)


def span_records(flow: ShopFlow, spans: list[Any]) -> list[SpanRecord]:
    """The demo's spans as records, each named with its service.

    A span's service is its ``polybus.service`` attribute, the App owning its
    subscription (process and settle spans), else its parent's (a publish
    belongs to the handler that made it).
    """
    by_id = {span.get_span_context().span_id: span for span in spans}

    def service_of(span: Any) -> str | None:
        seen = 0
        while span is not None and seen < 64:
            attrs = span.attributes or {}
            if "polybus.service" in attrs:
                return str(attrs["polybus.service"])
            sub = attrs.get("messaging.destination.subscription.name")
            if sub is not None and flow.service_of(str(sub)):
                return flow.service_of(str(sub))
            span = None if span.parent is None else by_id.get(span.parent.span_id)
            seen += 1
        return "cart"

    return from_spans(spans, service_of)


def order_trace(records: list[SpanRecord], order: str) -> list[SpanRecord]:
    """The records of the trace whose root span is the checkout of `order`."""
    roots = [r for r in records if r.attributes.get("polybus.order") == order]
    if not roots:
        return []
    return [r for r in records if r.trace_id == roots[0].trace_id]


def run_traced(
    bus: Bus, tracing: Tracing, orders: int, timeout: float
) -> tuple[ShopFlow, list[SpanRecord]]:
    """Run the flow with spans recorded in memory; returns the flow and every span's record."""
    memory: MemoryTracing = memory_tracing("polybus-demo")
    tracing.configure(tracer_provider=memory.provider, provider=bus.provider)
    flow = run_demo(bus, orders, timeout, tracer=memory.provider.get_tracer("polybus.demo"))
    tracing.flush()
    memory.provider.force_flush()
    return flow, span_records(flow, memory.spans())


@click.command("demo")
@click.option("--orders", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.option(
    "--trace",
    "show_trace",
    is_flag=True,
    help="Print the span waterfall of one order (otel extra).",
)
@click.option(
    "--trace-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write every span as a JSON line to FILE (otel extra).",
)
@click.pass_context
@friendly_errors
def demo_command(
    ctx: click.Context, orders: int, timeout: float, show_trace: bool, trace_out: Path | None
) -> None:
    """Run the shopping-cart flow as services on the bus and print the event trace."""
    console = Console()
    records: list[SpanRecord] = []
    pm = plugin_manager()
    # Tracing is registered before the bus is built: the bus reads its hooks once.
    tracing = install(pm) if show_trace or trace_out is not None else None
    with connect(ctx.obj["config_path"], pm=pm) as bus:
        console.print(f"polybus demo on provider [bold]{bus.provider}[/], {orders} order(s)")
        try:
            if tracing is not None:
                flow, records = run_traced(bus, tracing, orders, timeout)
            else:
                flow = run_demo(bus, orders, timeout)
        finally:
            remove_subscriptions(bus, ShopFlow(None).apps)
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
    if trace_out is not None:
        trace_out.write_text("".join(record.to_json() + "\n" for record in records))
        console.print(f"{len(records)} span(s) written to {trace_out}")
    if show_trace:
        one = order_trace(records, "order-1")
        console.print(f"trace {one[0].trace_id if one else '-'} of order-1 ({len(one)} spans):")
        for line in waterfall(one):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
