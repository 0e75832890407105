"""Shared by the inbox and saga tests: run Apps on a background loop, lose acks on purpose."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus import App
from polybus.core.bus import Bus
from polybus.core.contract import Adapter, Delivery


class LostAckDelivery:
    """A delivery whose first-attempt ack is turned into a nack: the handler's work committed,
    then the process 'crashed' before acking, so the event comes back."""

    def __init__(self, inner: Delivery) -> None:
        self.inner = inner

    @property
    def event(self) -> CloudEvent:
        """The delivered event."""
        return self.inner.event

    @property
    def attempt(self) -> int:
        """The inner delivery's attempt number."""
        return self.inner.attempt

    def ack(self) -> None:
        """Nack instead on the first attempt (a lost ack), else ack."""
        if self.inner.attempt == 1:
            self.inner.nack(0.0)
        else:
            self.inner.ack()

    def nack(self, delay: float = 0.0) -> None:
        """Pass through."""
        self.inner.nack(delay)

    def dead_letter(self, reason: str) -> None:
        """Pass through."""
        self.inner.dead_letter(reason)

    def extend(self, seconds: float) -> None:
        """Pass through when the inner delivery is renewable."""
        extend = getattr(self.inner, "extend", None)
        if extend is not None:
            extend(seconds)


class LostAcks:
    """A real adapter whose deliveries lose their first ack (forced redeliveries)."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner
        self.name = inner.name

    def receive(self, subscription: str, max_events: int = 10, timeout: float = 1.0) -> list[Any]:
        """The inner deliveries, wrapped."""
        return [LostAckDelivery(d) for d in self.inner.receive(subscription, max_events, timeout)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Running:
    """Apps started on one bus in a background event loop; stopped on exit."""

    def __init__(self, bus: Bus, apps: Sequence[App]) -> None:
        self.bus = bus
        self.apps = list(apps)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the apps' loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        """Start the loop and every app on the shared bus."""
        self.thread.start()
        for app in self.apps:
            app.with_settings(instant_retries=True, poll_timeout=0.05, grace=10.0)
            self.call(app.start(bus=self.bus))

    def stop(self) -> None:
        """Stop every app, then the loop."""
        try:
            for app in reversed(self.apps):
                self.call(app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10.0)
            self.loop.close()


@contextmanager
def running(bus: Bus, *apps: App) -> Iterator[Running]:
    """Run `apps` on `bus` for the length of the block."""
    runner = Running(bus, apps)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


def wait_until(check: Callable[[], bool], limit: float = 60.0, what: str = "condition") -> None:
    """Poll `check` until it holds; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
