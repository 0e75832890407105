"""The service `polybus run` runs in the SIGTERM test: slow handlers that log what they finished.

Names and timings come from the environment (set by the test):
POLYBUS_REL_TOPIC, POLYBUS_REL_SUB, POLYBUS_REL_OUT (a file each finished
event id is appended to), POLYBUS_REL_SLEEP (handler seconds),
POLYBUS_REL_ACK (the subscription's ack deadline).
"""

from __future__ import annotations

import asyncio
import os

from cloudevents.core.v1.event import CloudEvent

from polybus import App
from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.runtime import RuntimeSettings

app = App("reliability-service", settings=RuntimeSettings(grace=10.0, poll_timeout=0.2))
OUT = os.environ.get("POLYBUS_REL_OUT", "handled.txt")
SLEEP = float(os.environ.get("POLYBUS_REL_SLEEP", "0.2"))
POLICY = DeliveryPolicy(
    ack_deadline=float(os.environ.get("POLYBUS_REL_ACK", "10")),
    retry=RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0),
)


@app.subscriber(
    os.environ.get("POLYBUS_REL_SUB", "rel-sub"),
    topic=os.environ.get("POLYBUS_REL_TOPIC", "rel-topic"),
    policy=POLICY,
    concurrency=4,
)
async def handle(event: CloudEvent) -> None:
    """Work for a while, then record the event as finished (before the runtime acks it)."""
    await asyncio.sleep(SLEEP)
    with open(OUT, "a", encoding="utf-8") as out:
        out.write(event.get_id() + "\n")
