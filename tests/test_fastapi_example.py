"""The FastAPI example: the polybus App starts and stops with the web app's lifespan."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from examples.fastapi_app import inventory, web


def test_lifespan_runs_the_app_and_requests_publish_events() -> None:
    """Inside the lifespan the App is ready and handles what a request publishes; after, stopped."""
    with TestClient(web) as client:
        assert client.get("/readyz").json() == {"ready": True}
        answer = client.post("/orders", json={"order_id": "o-9", "items": ["sku-9"]})
        assert answer.status_code == 202
        assert inventory.bus is not None
        stats = inventory.bus.subscriptions["reserve-stock"].stats
        deadline = time.monotonic() + 10
        while stats.acked < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (stats.delivered, stats.acked) == (1, 1)
    assert inventory.ready is False and inventory.worker is None
