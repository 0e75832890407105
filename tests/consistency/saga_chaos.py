"""The order saga's three services in one process, with handlers that fail 30% of the time.

Run by test_saga_chaos.py as ``python -m tests.consistency.saga_chaos BUS DB SEED [outbox]``
on the local durable bus at path BUS and the database URL DB, until SIGTERM
(or SIGKILL); with ``outbox`` the saga's commands go through the
transactional outbox and a relay in this process publishes them. Half the injected failures happen before the handler runs, half
after it (inside the inbox transaction, after its reply was published). The
charge command of the order ``chaos-timeout`` is swallowed, so that saga's
charge step times out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
from dataclasses import replace
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from examples import order_saga as shop
from polybus import App, Context
from polybus.adapters.local.durable import DurableBus
from polybus.core.bus import Bus
from polybus.core.consistency.inbox import open_database
from polybus.core.consistency.relay import Relay, RelaySettings
from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.runtime import bind_handler

FAILURE_RATE = 0.3
TIMEOUT_ORDER = "chaos-timeout"
STEP_TIMEOUT = 4.0
POLICY = DeliveryPolicy(
    max_delivery_attempts=100,
    retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.2),
    ack_deadline=2.0,  # a killed process's leases come back quickly
)


class Chaos(RuntimeError):
    """An injected handler failure."""


def flaky(handler: Any, rng: random.Random) -> Any:
    """`handler` failing FAILURE_RATE of the time, before or after doing its work."""
    call = bind_handler(handler)

    def wrapped(event: CloudEvent, ctx: Context) -> None:
        data = event.get_data()
        order_id = data.get("order_id") if isinstance(data, dict) else None
        if event.get_type() == shop.CHARGE and order_id == TIMEOUT_ORDER:
            return  # lost: the saga's charge step will time out
        roll = rng.random()
        if roll < FAILURE_RATE / 2:
            raise Chaos("before the handler")
        call(event, ctx)
        if roll < FAILURE_RATE:
            raise Chaos("after the handler")

    return wrapped


def chaotic(app: App, rng: random.Random) -> App:
    """Every subscriber of `app` made flaky and given the fast-retry policy."""
    app.subscribers = [
        replace(spec, handler=flaky(spec.handler, rng), policy=POLICY) for spec in app.subscribers
    ]
    return app.with_settings(poll_timeout=0.05, grace=1.0)


async def serve(bus_path: str, database: str, seed: int, outbox: bool) -> None:
    """Run the three services (and the relay, with `outbox`) until SIGTERM."""
    rng = random.Random(seed)
    engine = open_database(database)
    bus = Bus(DurableBus(bus_path))
    relay = Relay(engine, bus, RelaySettings(poll_interval=0.05)) if outbox else None
    if relay is not None:
        relay.start()
    apps = [
        chaotic(shop.build_orders(engine, timeout=STEP_TIMEOUT, tick=0.2, outbox=outbox), rng),
        chaotic(shop.build_inventory(engine), rng),
        chaotic(shop.build_payments(engine), rng),
    ]
    for app in apps:
        await app.start(bus=bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for app in reversed(apps):
        await app.stop()
    if relay is not None:
        relay.stop()
    bus.close()
    engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("polybus").setLevel(logging.ERROR)  # injected failures are expected
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["outbox"]))
