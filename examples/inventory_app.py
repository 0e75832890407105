"""An inventory service as a polybus.App: run it with `polybus run examples.inventory_app:app`."""

from __future__ import annotations

from dataclasses import dataclass

from polybus import App, Context, DeliveryPolicy, new_event

app = App("inventory")
app.publishes("inventory", "com.shop.inventory.reserved")


@dataclass(frozen=True)
class OrderPlaced:
    """The data of com.shop.order.placed."""

    order_id: str
    items: list[str]


@app.subscriber("reserve-stock", topic="orders",
                filter="type = 'com.shop.order.placed'",
                policy=DeliveryPolicy(max_delivery_attempts=5), concurrency=4)
async def reserve(order: OrderPlaced, ctx: Context) -> None:
    reserved = new_event("com.shop.inventory.reserved", "/inventory",
                         {"order_id": order.order_id, "items": order.items}, subject=order.order_id)
    await ctx.publish(reserved, topic="inventory")
