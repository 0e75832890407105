"""polybus.App on the runtime: real concurrency, handler failures of every kind, typed payloads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel

from polybus import App, Context, DeliveryPolicy, RetryPolicy, new_event
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.runtime import RuntimeSettings

FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


def _run(app: App, body: Callable[[App], object], bus: Bus | None = None) -> Bus:
    """Start `app` on a memory bus, run the async `body`, stop; returns the bus."""
    bus = bus or Bus(MemoryBus())

    async def main() -> None:
        await app.start(bus=bus)
        try:
            await body(app)  # type: ignore[misc]
        finally:
            await app.stop()

    asyncio.run(main())
    return bus


async def _until(done: Callable[[], bool], limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_import_does_not_connect() -> None:
    """Declaring subscriptions connects nothing: the app has no bus until start."""
    app = App("svc")

    @app.subscriber("s", topic="t")
    def handle(event: CloudEvent) -> None: ...

    assert app.bus is None and app.worker is None and [s.name for s in app.subscribers] == ["s"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_concurrency_runs_that_many_handlers_at_once(kind: str) -> None:
    """With concurrency=4, four handlers are inside at the same time (a 4-party barrier passes)."""
    app = App("svc")
    barrier = threading.Barrier(4, timeout=10)
    passed: list[int] = []
    if kind == "sync":

        @app.subscriber("s", topic="t", concurrency=4)
        def handle(event: CloudEvent) -> None:
            barrier.wait()
            passed.append(1)

    else:

        @app.subscriber("s", topic="t", concurrency=4)
        async def handle_async(event: CloudEvent) -> None:
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
            passed.append(1)

    async def body(app: App) -> None:
        await app.publish([new_event("com.x", "/s", {"n": i}) for i in range(8)], topic="t")
        await _until(lambda: len(passed) == 8)

    bus = _run(app, body)
    assert bus.subscriptions["s"].stats.acked == 8


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, RuntimeError, GeneratorExit])
def test_any_handler_exception_is_that_deliverys_failure(exc: type[BaseException]) -> None:
    """A handler raising anything, BaseException included, is retried; nothing is lost."""
    app = App("svc")
    seen: dict[str, int] = {}

    @app.subscriber("s", topic="t", policy=DeliveryPolicy(retry=FAST), concurrency=2)
    def handle(event: CloudEvent) -> None:
        seen[event.get_id()] = seen.get(event.get_id(), 0) + 1
        if seen[event.get_id()] == 1:
            raise exc("boom")

    events = [new_event("com.x", "/s", {"n": i}) for i in range(20)]

    async def body(app: App) -> None:
        await app.publish(events, topic="t")
        await _until(lambda: app.bus.subscriptions["s"].stats.acked == 20)  # type: ignore[union-attr]

    bus = _run(app, body)
    stats = bus.subscriptions["s"].stats
    assert (stats.acked, stats.retried, stats.dead_lettered) == (20, 20, 0)
    assert stats.delivered == stats.settled() == 40
    assert seen == {e.get_id(): 2 for e in events}


def test_hung_handler_is_nacked_after_the_handling_limit_while_others_flow() -> None:
    """A handler that never returns frees its slot after max_handling_time; the rest flow."""
    app = App("svc", settings=RuntimeSettings(max_handling_time=0.3))
    handled: list[int] = []
    hung: list[int] = []

    @app.subscriber("s", topic="t", policy=DeliveryPolicy(retry=FAST), concurrency=2)
    async def handle(event: CloudEvent) -> None:
        n = event.get_data()["n"]  # type: ignore[index]
        if n == 0 and not hung:
            hung.append(n)
            await asyncio.sleep(3600)
        handled.append(n)

    async def body(app: App) -> None:
        await app.publish([new_event("com.x", "/s", {"n": i}) for i in range(10)], topic="t")
        await _until(lambda: sorted(handled) == list(range(10)))

    bus = _run(app, body)
    stats = bus.subscriptions["s"].stats
    assert (stats.acked, stats.retried, stats.dead_lettered) == (10, 1, 0)
    assert "ran longer than 0.3s" in (stats.last_error or "")


def test_context_nack_and_dead_letter_settle_as_asked() -> None:
    """ctx.nack redelivers with the next attempt number; ctx.dead_letter keeps the reason."""
    app = App("svc")
    attempts: list[int] = []
    policy = DeliveryPolicy(retry=FAST, max_delivery_attempts=3)

    @app.subscriber("s", topic="t", policy=policy)
    def handle(event: CloudEvent, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            ctx.nack(0.0)
        else:
            ctx.dead_letter("not today")

    memory = MemoryBus()

    async def body(app: App) -> None:
        await app.publish(new_event("com.x", "/s", {}), topic="t")
        await _until(lambda: app.bus.subscriptions["s"].stats.dead_lettered == 1)  # type: ignore[union-attr]

    _run(app, body, Bus(memory))
    assert attempts == [1, 2]
    assert memory.dead_letter_reasons("s") == ["not today"]


class Reading(BaseModel):
    """A pydantic payload."""

    device: str
    celsius: float


@dataclass(frozen=True)
class Order:
    """A typed payload."""

    order_id: str
    qty: int


def test_typed_payload_is_parsed_and_a_misfit_is_dead_lettered_with_the_rule() -> None:
    """A dataclass-annotated handler gets parsed data; data that does not fit is dead-lettered."""
    app = App("svc")
    orders: list[Order] = []

    @app.subscriber("s", topic="t", policy=DeliveryPolicy(retry=FAST))
    async def handle(order: Order, ctx: Context) -> None:
        orders.append(order)

    memory = MemoryBus()

    async def body(app: App) -> None:
        await app.publish(new_event("com.x", "/s", {"order_id": "o-1", "qty": 2}), topic="t")
        await app.publish(new_event("com.x", "/s", {"order_id": "o-2", "qty": "two"}), topic="t")
        await _until(lambda: app.bus.subscriptions["s"].stats.settled() == 2)  # type: ignore[union-attr]

    _run(app, body, Bus(memory))
    assert orders == [Order("o-1", 2)]
    [reason] = memory.dead_letter_reasons("s")
    assert "data.qty='two': must be int" in reason


def test_startup_and_shutdown_hooks_run_in_order() -> None:
    """Startup hooks run before consuming, shutdown hooks after the handlers stopped."""
    app = App("svc")
    calls: list[str] = []

    @app.on_startup
    async def opened() -> None:
        calls.append("startup")

    @app.on_shutdown
    def closed() -> None:
        calls.append("shutdown")

    @app.subscriber("s", topic="t")
    def handle(event: CloudEvent) -> None:
        calls.append("handled")

    async def body(app: App) -> None:
        await app.publish(new_event("com.x", "/s", {}), topic="t")
        await _until(lambda: "handled" in calls)

    _run(app, body)
    assert calls == ["startup", "handled", "shutdown"]


def test_stop_lets_in_flight_handlers_finish_within_grace() -> None:
    """On stop, a handler already running finishes and is acked; nothing new is leased."""
    app = App("svc", settings=RuntimeSettings(grace=10))
    started = asyncio.Event()
    finished: list[int] = []

    @app.subscriber("s", topic="t", concurrency=1)
    async def handle(event: CloudEvent) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(event.get_data()["n"])  # type: ignore[index]

    memory = MemoryBus()

    async def main() -> None:
        await app.start(bus=Bus(memory))
        await app.publish([new_event("com.x", "/s", {"n": i}) for i in range(5)], topic="t")
        await started.wait()
        await app.stop()

    asyncio.run(main())
    assert finished == [0]
    assert memory.backlog("s") == 4  # the rest stay for the next consumer


def test_stop_leaves_a_bus_it_was_given_open() -> None:
    """An app started on the caller's bus stops without closing it; the caller can still use it."""
    app = App("svc")

    @app.subscriber("s", topic="t")
    def handle(event: CloudEvent) -> None: ...

    memory = MemoryBus()
    bus = Bus(memory)

    async def body(app: App) -> None:
        await app.publish(new_event("com.x", "/s", {}), topic="t")
        await _until(lambda: bus.subscriptions["s"].stats.acked == 1)

    _run(app, body, bus)
    bus.publish(new_event("com.x", "/s", {}), "t")  # still open
    assert memory.backlog("s") == 1


def test_pydantic_model_payload_is_validated_and_a_misfit_is_dead_lettered() -> None:
    """A handler annotated with a pydantic model gets a validated model; a misfit is dead-lettered."""
    app = App("svc")
    readings: list[Reading] = []

    @app.subscriber("s", topic="t", policy=DeliveryPolicy(retry=FAST))
    def handle(reading: Reading) -> None:
        readings.append(reading)

    memory = MemoryBus()

    async def body(app: App) -> None:
        await app.publish(new_event("com.x", "/s", {"device": "d1", "celsius": 21.5}), topic="t")
        await app.publish(new_event("com.x", "/s", {"device": "d2"}), topic="t")
        await _until(lambda: app.bus.subscriptions["s"].stats.settled() == 2)  # type: ignore[union-attr]

    _run(app, body, Bus(memory))
    assert readings == [Reading(device="d1", celsius=21.5)]
    [reason] = memory.dead_letter_reasons("s")
    assert "does not fit Reading" in reason and "celsius" in reason


def test_a_handler_whose_payload_type_cannot_be_resolved_is_refused_at_declaration() -> None:
    """An annotation that cannot be resolved is an error when declared, never a silent fallback."""
    app = App("svc")

    class Local:
        pass

    def handle(event: Local) -> None: ...

    handle.__annotations__["event"] = "Missing"
    with pytest.raises(TypeError, match="cannot resolve its annotations"):
        app.subscriber("s", topic="t")(handle)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_publish_hooks_see_the_event_being_handled(kind: str) -> None:
    """Middleware called for a handler's publish sees the handled event (current_event)."""
    from polybus.adapters import plugin_manager
    from polybus.core.hookspecs import hookimpl
    from polybus.core.runtime.current import current_event

    causes: list[str | None] = []

    class Causation:
        @hookimpl
        def polybus_before_publish(self, event: CloudEvent, topic: str) -> None:
            handled = current_event.get()
            causes.append(None if handled is None else handled.get_id())

    app = App("svc")
    if kind == "sync":

        @app.subscriber("s", topic="t")
        def handle(event: CloudEvent, ctx: Context) -> None:
            ctx.publish_now(new_event("com.y", "/s", {}), topic="out")

    else:

        @app.subscriber("s", topic="t")
        async def handle_async(event: CloudEvent, ctx: Context) -> None:
            await ctx.publish(new_event("com.y", "/s", {}), topic="out")

    first = new_event("com.x", "/s", {})
    bus = Bus(MemoryBus(), hooks=plugin_manager([Causation()], load_entrypoints=False).hook)

    async def body(app: App) -> None:
        await app.publish(first, topic="t")
        await _until(lambda: len(causes) == 2)

    _run(app, body, bus)
    assert causes == [None, first.get_id()]
