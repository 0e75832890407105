"""The shopping-cart order saga: reserve inventory, charge payment, confirm; else compensate.

Three services, each an App that runs on any provider (``polybus run
examples.order_saga:orders``, ``...:inventory``, ``...:payments``):

- ``orders`` runs the saga. An ``com.shop.order.placed`` event on the
  ``orders`` topic starts it (the order id is the saga id); it sends
  ``reserve`` to inventory, then ``charge`` to payments, then publishes
  ``com.shop.order.confirmed``. A rejected reservation, a declined payment
  or a step without a reply within `timeout` seconds releases the inventory
  (and refunds, for a timed-out charge) and publishes ``com.shop.order.cancelled``.
- ``inventory`` reserves and releases stock; ``payments`` charges and refunds.
  Both are idempotent subscribers: their writes commit with the inbox row, so a
  redelivered command takes effect once, and the reply they publish has an id
  derived from the command's, so a repeated reply is the same event.

Each App reads its database from ``ORDER_SAGA_DB`` (default: a SQLite file
in the working directory); in production give each service its own.
See docs/consistency.md.
"""

from __future__ import annotations

import os
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select, update

from polybus import App, Context, new_event
from polybus.core.consistency.saga import FAIL, NEXT, Command, Saga, SagaState, Step

ORDERS, INVENTORY, PAYMENTS, REPLIES = "orders", "inventory-commands", "payment-commands", "order-replies"
PLACED = "com.shop.order.placed"
RESERVE, RELEASE = "com.shop.inventory.reserve", "com.shop.inventory.release"
RESERVED, REJECTED = "com.shop.inventory.reserved", "com.shop.inventory.rejected"
CHARGE, REFUND = "com.shop.payment.charge", "com.shop.payment.refund"
CHARGED, DECLINED = "com.shop.payment.charged", "com.shop.payment.declined"
CONFIRMED, CANCELLED = "com.shop.order.confirmed", "com.shop.order.cancelled"
MAX_QUANTITY = 10  # inventory rejects larger orders
CARD_LIMIT = 500  # payments declines larger amounts

shop = MetaData()
reservations = Table(
    "shop_reservations",
    shop,
    Column("order_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # reserved | released
)
payments_table = Table(
    "shop_payments",
    shop,
    Column("order_id", String(100), primary_key=True),
    Column("amount", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # charged | refunded
)


def order_saga(timeout: float = 5.0) -> Saga:
    """The saga: reserve (undo: release), charge (undo: refund), confirm; cancel when compensated."""

    def order(state: SagaState) -> dict[str, Any]:
        return dict(state.data)

    return Saga(
        "order",
        steps=[
            Step(
                "reserve",
                action=lambda s: Command(RESERVE, order(s), INVENTORY),
                compensation=lambda s: Command(RELEASE, {"order_id": s.saga_id}, INVENTORY),
                timeout=timeout,
                on={RESERVED: NEXT, REJECTED: FAIL},
            ),
            Step(
                "charge",
                action=lambda s: Command(CHARGE, order(s), PAYMENTS),
                compensation=lambda s: Command(REFUND, {"order_id": s.saga_id}, PAYMENTS),
                timeout=timeout,
                on={CHARGED: NEXT, DECLINED: FAIL},
            ),
            Step("confirm", action=lambda s: Command(CONFIRMED, order(s), ORDERS)),
        ],
        on_compensated=lambda s: Command(
            CANCELLED, {"order_id": s.saga_id, "reason": s.reason}, ORDERS
        ),
    )


def build_orders(
    database: str | Engine, *, timeout: float = 5.0, tick: float = 1.0, outbox: bool = False
) -> App:
    """The orders service: starts one saga per placed order and runs it.

    `outbox` sends the saga's commands through the transactional outbox
    (run a relay on `database`: ``polybus run --outbox-db URL``).
    """
    app = App("orders", database=database)
    saga = app.saga(order_saga(timeout), topic=REPLIES, tick=tick, outbox=outbox)

    @app.subscriber("place-order", topic=ORDERS, filter=f"type = '{PLACED}'")
    def place(event: CloudEvent) -> None:
        data = event.get_data()
        assert isinstance(data, dict)
        saga.start(str(data["order_id"]), data)  # a second placed event for one order is a no-op

    return app


def reply(ctx: Context, command: CloudEvent, type: str, data: dict[str, Any]) -> None:
    """Answer a saga command: same id on every retry, correlated with the saga by the runtime."""
    event = new_event(type, f"/shop/{ctx.subscription}", data, id=f"{command.get_id()}:reply")
    ctx.publish_now(event, REPLIES)


def build_inventory(database: str | Engine) -> App:
    """The inventory service: reserve (or reject) and release, exactly once per command."""
    app = App("inventory", database=database)

    @app.on_startup
    def tables() -> None:
        assert app.inbox is not None
        shop.create_all(app.inbox.engine)

    @app.subscriber(
        "inventory", topic=INVENTORY, filter=f"type IN ('{RESERVE}', '{RELEASE}')", idempotent=True
    )
    def handle(event: CloudEvent, ctx: Context) -> None:
        data = event.get_data()
        assert isinstance(data, dict) and ctx.connection is not None
        conn, order_id = ctx.connection, str(data["order_id"])
        known = conn.execute(
            select(reservations.c.status).where(reservations.c.order_id == order_id)
        ).scalar()
        if event.get_type() == RELEASE:
            if known is None:  # released before the reserve arrived: it must never reserve now
                conn.execute(
                    reservations.insert().values(order_id=order_id, sku="", quantity=0, status="released")
                )
            else:
                conn.execute(
                    update(reservations)
                    .where(reservations.c.order_id == order_id)
                    .values(status="released")
                )
            return
        if known == "released" or int(data["quantity"]) > MAX_QUANTITY:
            reply(ctx, event, REJECTED, {"order_id": order_id})
            return
        if known is None:
            conn.execute(
                reservations.insert().values(
                    order_id=order_id, sku=str(data["sku"]), quantity=int(data["quantity"]), status="reserved"
                )
            )
        reply(ctx, event, RESERVED, {"order_id": order_id})

    return app


def build_payments(database: str | Engine) -> App:
    """The payments service: charge (or decline) and refund, exactly once per command."""
    app = App("payments", database=database)

    @app.on_startup
    def tables() -> None:
        assert app.inbox is not None
        shop.create_all(app.inbox.engine)

    @app.subscriber(
        "payments", topic=PAYMENTS, filter=f"type IN ('{CHARGE}', '{REFUND}')", idempotent=True
    )
    def handle(event: CloudEvent, ctx: Context) -> None:
        data = event.get_data()
        assert isinstance(data, dict) and ctx.connection is not None
        conn, order_id = ctx.connection, str(data["order_id"])
        known = conn.execute(
            select(payments_table.c.status).where(payments_table.c.order_id == order_id)
        ).scalar()
        if event.get_type() == REFUND:  # a refund before its charge leaves a mark: never charge
            if known is None:
                conn.execute(payments_table.insert().values(order_id=order_id, amount=0, status="refunded"))
            else:
                conn.execute(
                    update(payments_table)
                    .where(payments_table.c.order_id == order_id)
                    .values(status="refunded")
                )
            return
        if known == "refunded" or int(data["amount"]) > CARD_LIMIT:
            reply(ctx, event, DECLINED, {"order_id": order_id})
            return
        if known is None:
            conn.execute(
                payments_table.insert().values(order_id=order_id, amount=int(data["amount"]), status="charged")
            )
        reply(ctx, event, CHARGED, {"order_id": order_id})

    return app


def place_order(order_id: str, sku: str, quantity: int, amount: int) -> CloudEvent:
    """The event that starts a saga (publish it to the ``orders`` topic)."""
    data = {"order_id": order_id, "sku": sku, "quantity": quantity, "amount": amount}
    return new_event(PLACED, "/shop/web", data, id=f"placed:{order_id}")


_DATABASE = os.environ.get("ORDER_SAGA_DB", "sqlite:///order_saga.db")
orders = build_orders(_DATABASE)
inventory = build_inventory(_DATABASE)
payments = build_payments(_DATABASE)
