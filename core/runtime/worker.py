"""Run a Bus's subscriptions on an asyncio loop, one delivery per handler slot.

Per subscription a receive loop asks the adapter only for as many deliveries
as there are free slots (``concurrency`` minus those in flight), so no event
waits in a local batch while its lease runs out. Each delivery then runs in
its own task: async handlers on the loop, sync handlers in a bounded thread
pool. While a handler works, its lease is renewed (when the delivery is a
`RenewableDelivery`) up to `max_handling_time`; after that the delivery is
nacked and the slot freed. Any exception from a handler, BaseException
included, is that delivery's failure: retried with the policy's backoff, then
dead-lettered. On `stop()` the loops stop leasing, in-flight handlers get
`grace` seconds, the rest are released for redelivery, and the bus is closed
within `close_timeout` even when the endpoint does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from cloudevents.core.v1.event import CloudEvent

from polybus.core.bus import Bus, Subscription
from polybus.core.contract import Delivery, RenewableDelivery
from polybus.core.correlation import correlate
from polybus.core.errors import ValidationError
from polybus.core.runtime.context import Context
from polybus.core.runtime.current import current_event, current_subscription
from polybus.core.runtime.handlers import HandlerCall, PayloadError
from polybus.core.runtime.metrics import RuntimeStats

log = logging.getLogger("polybus.runtime")
T = TypeVar("T")


@dataclass(frozen=True)
class RuntimeSettings:
    """How the runtime paces, bounds and stops its handlers (seconds)."""

    grace: float = 30.0
    close_timeout: float = 10.0
    max_handling_time: float = 300.0
    poll_timeout: float = 0.5
    renew_fraction: float = 0.5  # renew when this fraction of the ack deadline has passed
    instant_retries: bool = False  # test kits: redeliver at once instead of backing off
    io_threads: int = 16


@dataclass
class _Running:
    subscription: Subscription
    handler: HandlerCall
    concurrency: int
    stats: RuntimeStats = field(default_factory=RuntimeStats)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    free: asyncio.Condition | None = None
    failing: bool = False


class Worker:
    """Consumes every added subscription of one Bus until `stop()`."""

    def __init__(self, bus: Bus, settings: RuntimeSettings | None = None) -> None:
        self.bus = bus
        self.settings = settings or RuntimeSettings()
        self._running: dict[str, _Running] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._io = ThreadPoolExecutor(self.settings.io_threads, thread_name_prefix="polybus-io")
        self._receivers: ThreadPoolExecutor | None = None
        self._handlers: ThreadPoolExecutor | None = None

    # setup ------------------------------------------------------------------

    def add(self, subscription: Subscription, handler: HandlerCall, concurrency: int = 1) -> None:
        """Consume `subscription` with `handler`, at most `concurrency` deliveries at once."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._running[subscription.name] = _Running(subscription, handler, concurrency)

    def stats(self) -> list[tuple[Subscription, RuntimeStats]]:
        """Each subscription with its runtime figures (for /metrics)."""
        return [(r.subscription, r.stats) for r in self._running.values()]

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now, over all subscriptions."""
        return sum(r.stats.in_flight for r in self._running.values())

    # running ----------------------------------------------------------------

    async def start(self) -> None:
        """Start one receive loop per subscription on the running loop."""
        self._stopping.clear()
        self._receivers = ThreadPoolExecutor(
            max(1, len(self._running)), thread_name_prefix="polybus-receive"
        )
        sync_slots = sum(r.concurrency for r in self._running.values() if not r.handler.is_async)
        self._handlers = ThreadPoolExecutor(
            max(1, sync_slots), thread_name_prefix="polybus-handler"
        )
        for running in self._running.values():
            running.free = asyncio.Condition()
            self._loops.append(asyncio.create_task(self._receive_loop(running)))

    async def stop(self) -> None:
        """Stop leasing, give in-flight handlers the grace period, release the rest, close."""
        self._stopping.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        pending = {task for r in self._running.values() for task in r.tasks}
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.settings.grace)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%d handler(s) still running after %.1fs grace; released",
                    len(late),
                    self.settings.grace,
                )
                await asyncio.gather(*late, return_exceptions=True)
        for pool in (self._receivers, self._handlers):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    async def close(self, *, close_bus: bool = True) -> None:
        """Release the worker's threads and close the bus (when `close_bus`) within `close_timeout`.

        The bus is closed from a daemon thread, so an unresponsive endpoint
        cannot hold shutdown longer than the timeout.
        """
        if not close_bus:
            self._io.shutdown(wait=False, cancel_futures=True)
            return
        done = threading.Event()

        def close() -> None:
            try:
                self.bus.close()
            except Exception:
                log.exception("closing the bus failed")
            finally:
                done.set()

        threading.Thread(target=close, name="polybus-close", daemon=True).start()
        finished = await asyncio.get_running_loop().run_in_executor(
            None, done.wait, self.settings.close_timeout
        )
        if not finished:
            log.error("bus did not close within %.1fs; abandoning it", self.settings.close_timeout)
        self._io.shutdown(wait=False, cancel_futures=True)

    async def publish(self, events: CloudEvent | Sequence[CloudEvent], topic: str) -> None:
        """Publish through the bus without blocking the loop (correlated inside a handler)."""
        await self._call(partial(self.bus.publish, correlate(events), topic))

    def publish_now(self, events: CloudEvent | Sequence[CloudEvent], topic: str) -> None:
        """Publish from a sync handler's thread (correlated with the event it handles)."""
        self.bus.publish(correlate(events), topic)

    # internals ----------------------------------------------------------------

    async def _call(self, func: Callable[[], T]) -> T:
        # The caller's context (current_event, trace context) travels into the thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._io, context.run, func)

    async def _receive_loop(self, running: _Running) -> None:
        name, loop = running.subscription.name, asyncio.get_running_loop()
        assert running.free is not None
        while not self._stopping.is_set():
            async with running.free:
                await running.free.wait_for(
                    lambda: running.stats.in_flight < running.concurrency or self._stopping.is_set()
                )
            if self._stopping.is_set():
                return
            room = running.concurrency - running.stats.in_flight
            try:
                deliveries = await loop.run_in_executor(
                    self._receivers,
                    self.bus.adapter.receive,
                    name,
                    room,
                    self.settings.poll_timeout,
                )
            except Exception as exc:  # transport trouble: log and back off, never die silently
                if not running.failing:  # the first failure with its traceback, then one line
                    log.exception("%s: receive failed; retrying every 1s", name)
                else:
                    log.debug("%s: receive still failing: %s", name, exc)
                running.failing = True
                await _sleep_unless(self._stopping, 1.0)
                continue
            if running.failing:
                log.warning("%s: receiving again", name)
                running.failing = False
            for delivery in deliveries:
                if self._stopping.is_set():
                    await self._settle(running, delivery, "release")
                    continue
                running.stats.in_flight += 1
                task = asyncio.create_task(self._deliver(running, delivery))
                running.tasks.add(task)
                task.add_done_callback(partial(self._finished, running))

    def _finished(self, running: _Running, task: asyncio.Task[None]) -> None:
        running.tasks.discard(task)
        running.stats.in_flight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: delivery task failed", running.subscription.name, exc_info=task.exception()
            )
        assert running.free is not None
        free = running.free

        async def notify() -> None:
            async with free:
                free.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def _deliver(self, running: _Running, delivery: Delivery) -> None:
        sub, bus = running.subscription, self.bus
        event = delivery.event
        try:
            bus.before_handle(sub, event)
        except ValidationError as exc:
            await self._settle(running, delivery, "dead-letter", f"rejected by middleware: {exc}")
            bus.record(sub, event, "dead-lettered", exc)
            return
        if not sub.accepts(event):
            await self._settle(running, delivery, "ack")
            bus.record(sub, event, "filtered", None)
            return
        ctx = Context(sub.name, delivery.attempt, event, self.publish, self.publish_now)
        event_token = current_event.set(event)
        sub_token = current_subscription.set(sub.name)
        renewer = asyncio.create_task(self._renew(running, delivery))
        started = time.perf_counter()
        error: BaseException | None = None
        limit = asyncio.timeout(self.settings.max_handling_time)
        try:
            async with limit:
                await self._run_handler(running.handler, event, ctx)
        except asyncio.CancelledError:
            renewer.cancel()
            await asyncio.shield(self._settle(running, delivery, "release"))
            bus.record(sub, event, "retried", None)
            raise
        except BaseException as exc:
            error = exc
            if isinstance(exc, TimeoutError) and limit.expired():
                error = TimeoutError(
                    f"handler ran longer than {self.settings.max_handling_time:g}s"
                )
        finally:
            renewer.cancel()
            running.stats.handler_seconds.observe(time.perf_counter() - started)
            current_event.reset(event_token)
            current_subscription.reset(sub_token)
        await self._conclude(running, delivery, ctx, error)

    async def _run_handler(self, handler: HandlerCall, event: CloudEvent, ctx: Context) -> None:
        if handler.is_async:
            await handler(event, ctx)
            return
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # current_event and trace context reach the thread
        await loop.run_in_executor(self._handlers, context.run, _call_sync, handler, event, ctx)

    async def _conclude(
        self, running: _Running, delivery: Delivery, ctx: Context, error: BaseException | None
    ) -> None:
        sub, bus, event = running.subscription, self.bus, delivery.event
        policy = sub.spec.policy
        if isinstance(error, PayloadError):
            await self._settle(running, delivery, "dead-letter", f"payload: {error}")
            bus.record(sub, event, "dead-lettered", error)
        elif error is not None:
            if delivery.attempt >= policy.max_delivery_attempts:
                reason = (
                    f"handler failed {delivery.attempt} time(s): {type(error).__name__}: {error}"
                )
                await self._settle(running, delivery, "dead-letter", reason)
                bus.record(sub, event, "dead-lettered", error)
            else:
                delay = (
                    0.0 if self.settings.instant_retries else policy.retry.backoff(delivery.attempt)
                )
                await self._settle(running, delivery, "nack", delay=delay)
                bus.record(sub, event, "retried", error)
        elif ctx.decision is not None and ctx.decision.action == "dead-letter":
            await self._settle(running, delivery, "dead-letter", ctx.decision.reason)
            bus.record(sub, event, "dead-lettered", None)
        elif ctx.decision is not None:
            if delivery.attempt >= policy.max_delivery_attempts:
                reason = f"nacked by the handler on attempt {delivery.attempt} of {policy.max_delivery_attempts}"
                await self._settle(running, delivery, "dead-letter", reason)
                bus.record(sub, event, "dead-lettered", None)
            else:
                delay = 0.0 if self.settings.instant_retries else ctx.decision.delay
                await self._settle(running, delivery, "nack", delay=delay)
                bus.record(sub, event, "retried", None)
        else:
            await self._settle(running, delivery, "ack")
            running.stats.observe_latency(event)  # end to end: the event's time to handled
            bus.record(sub, event, "acked", None)

    async def _settle(
        self, running: _Running, delivery: Delivery, how: str, reason: str = "", delay: float = 0.0
    ) -> None:
        name = running.subscription.name
        if how == "ack":
            action: Callable[[], None] = delivery.ack
        elif how == "dead-letter":
            action = partial(delivery.dead_letter, reason)
        elif how == "nack":
            action = partial(delivery.nack, delay)
        else:  # release: hand it back for redelivery at once (shutdown)
            action = partial(delivery.nack, 0.0)
        try:
            await self._call(action)
        except Exception:  # the lease will expire and the event come back: at least once
            log.exception("%s: %s of event %s failed", name, how, delivery.event.get_id())

    async def _renew(self, running: _Running, delivery: Delivery) -> None:
        if not isinstance(delivery, RenewableDelivery):
            return
        deadline = running.subscription.spec.policy.ack_deadline
        every = max(0.01, deadline * self.settings.renew_fraction)
        while True:
            await asyncio.sleep(every)
            try:
                await self._call(partial(delivery.extend, deadline))
            except Exception:
                log.exception("%s: lease renewal failed", running.subscription.name)
                continue
            running.stats.lease_renewals += 1


def _call_sync(handler: HandlerCall, event: CloudEvent, ctx: Context) -> Any:
    return handler(event, ctx)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
