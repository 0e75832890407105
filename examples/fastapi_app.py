"""A FastAPI web app that starts and stops a polybus App with its lifespan.

    uvicorn examples.fastapi_app:web

POST /orders publishes com.shop.order.placed without blocking the event loop;
the inventory service (examples/inventory_app.py) runs in the same process,
started before the first request and stopped cleanly after the last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from examples.inventory_app import app as inventory
from polybus import new_event


class PlaceOrder(BaseModel):
    """The request body of POST /orders."""

    order_id: str
    items: list[str]


@asynccontextmanager
async def lifespan(web: FastAPI) -> AsyncIterator[None]:
    """Run the polybus App for as long as the web app runs."""
    async with inventory:
        yield


web = FastAPI(lifespan=lifespan)


@web.post("/orders", status_code=202)
async def place_order(order: PlaceOrder) -> dict[str, str]:
    """Accept an order and publish it as an event."""
    event = new_event("com.shop.order.placed", "/shop", order.model_dump(), subject=order.order_id)
    await inventory.publish(event, topic="orders")
    return {"accepted": order.order_id}


@web.get("/readyz")
async def ready() -> dict[str, bool]:
    """Ready once the polybus App is connected and provisioned."""
    return {"ready": inventory.ready}
