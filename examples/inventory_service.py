"""The README's example service: the same code on every provider."""

from polybus import DeliveryPolicy, connect, new_event

bus = connect()  # polybus.toml, $POLYBUS_CONFIG or $POLYBUS_PROVIDER; the local bus by default


def reserve_stock(event):  # type: ignore[no-untyped-def]
    print("reserving", event.get_data()["items"], "for", event.get_subject())


bus.subscribe("inventory", reserve_stock, topic="orders",
              filter={"prefix": {"type": "com.shop.order."}},
              policy=DeliveryPolicy(max_delivery_attempts=5))
bus.publish(new_event("com.shop.order.placed", "/shop", {"items": ["sku-1"]}, subject="o-1"),
            topic="orders")
bus.drain(idle=2.0)
bus.close()
