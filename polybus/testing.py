"""A test kit for polybus services: run an App in memory, synchronously, and inspect it.

    from polybus.testing import TestBus

    def test_reserves_stock():
        with TestBus(app) as bus:
            bus.publish(new_event("com.shop.order.placed", "/shop", {"sku": "A"}), topic="orders")
            assert [e.get_type() for e in bus.published("inventory")] == ["com.shop.inventory.reserved"]
            assert bus.outcomes("reserve-stock")[0].outcome == "acked"

`TestBus` runs the app's real runtime (the same handlers, concurrency,
retries and dead-lettering) on the embedded memory bus. The capabilities of
the provider the app is configured for are enforced, so a subscription the
real provider would refuse is refused here too, and filters are evaluated
whole (what the provider evaluates natively plus the client-side residual is
exactly the portable filter). Retries happen at once instead of backing off.
`publish` returns when every handler, and everything they published in turn,
has finished.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters import available_adapters, plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.app import App
from polybus.core.bus import Bus
from polybus.core.config import Config, load_config
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.hookspecs import hookimpl


@dataclass(frozen=True)
class Outcome:
    """How one delivery to one subscription ended."""

    subscription: str
    event_id: str
    event_type: str
    outcome: str  # acked, retried, dead-lettered, filtered
    error: str | None


class _Recorder:
    """Middleware plugin that records every publish and every handler outcome."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.published: list[tuple[str, CloudEvent]] = []
        self.outcomes: list[Outcome] = []

    @hookimpl
    def polybus_after_publish(self, events: Sequence[CloudEvent], topic: str) -> None:
        with self.lock:
            self.published.extend((topic, event) for event in events)

    @hookimpl
    def polybus_after_handle(
        self, event: CloudEvent, subscription: str, outcome: str, error: BaseException | None
    ) -> None:
        text = None if error is None else f"{type(error).__name__}: {error}"
        with self.lock:
            self.outcomes.append(
                Outcome(subscription, event.get_id(), event.get_type(), outcome, text)
            )


class TestBus:
    """Runs an App on the in-memory bus for the length of a ``with`` block."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        provider: str | None = None,
        timeout: float = 10.0,
        plugins: Sequence[object] = (),
    ) -> None:
        self.app = app
        self._plugins = tuple(plugins)  # extra middleware (tracing, validation) for the test
        self.timeout = timeout
        self._provider = provider
        self._recorder = _Recorder()
        self._memory = MemoryBus()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.bus: Bus | None = None

    def __enter__(self) -> TestBus:
        config = self.app.config
        name = (
            self._provider
            or self.app.provider
            or (config if isinstance(config, Config) else load_config(config)).provider
        )
        registry = available_adapters()
        capabilities = registry[name].info.capabilities if name in registry else None
        pm = plugin_manager([self._recorder, *self._plugins], load_entrypoints=False)
        self.bus = Bus(self._memory, hooks=pm.hook, capabilities=capabilities)
        self._saved_settings = self.app.settings
        self.app.with_settings(instant_retries=True, poll_timeout=0.05, grace=self.timeout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="polybus-testbus", daemon=True
        )
        self._thread.start()
        self._run(self.app.start(bus=self.bus))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self.app.stop())
            if self.bus is not None:
                self.bus.close()  # the app leaves a bus it was given open
        finally:
            assert self._loop is not None and self._thread is not None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()
            self.app.settings = self._saved_settings

    # acting -------------------------------------------------------------------

    def publish(
        self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC
    ) -> None:
        """Publish, then wait until every handler and what they published has finished."""
        assert self.bus is not None, "use TestBus inside a with block"
        self.bus.publish(events, topic)
        self.wait_idle()

    def wait_idle(self) -> None:
        """Wait until no subscription has an event waiting, delayed or in a handler."""
        deadline = time.monotonic() + self.timeout
        quiet = 0
        while quiet < 3:  # idle on three checks in a row: handlers may publish as they finish
            if time.monotonic() > deadline:
                busy = {s.name: self._memory.backlog(s.name) for s in self.app.subscribers}
                raise TimeoutError(f"the app did not settle within {self.timeout}s: backlog {busy}")
            worker = self.app.worker
            busy_now = (worker is not None and worker.in_flight > 0) or any(
                self._memory.backlog(s.name) for s in self.app.subscribers
            )
            quiet = 0 if busy_now else quiet + 1
            time.sleep(0.005)

    # inspecting -----------------------------------------------------------------

    def published(self, topic: str | None = None) -> list[CloudEvent]:
        """Events published (by the test and by handlers), to `topic` or to any topic."""
        with self._recorder.lock:
            return [e for t, e in self._recorder.published if topic is None or t == topic]

    def outcomes(self, subscription: str | None = None) -> list[Outcome]:
        """Every settled delivery, in order, for `subscription` or for all."""
        with self._recorder.lock:
            return [o for o in self._recorder.outcomes if subscription in (None, o.subscription)]

    def dead_letters(self, subscription: str) -> list[str]:
        """The reasons of the events now in the subscription's dead-letter queue."""
        return self._memory.dead_letter_reasons(subscription)

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout + 30)
