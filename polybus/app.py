"""`App`: a polybus service declared with decorators, importable without connecting.

    from polybus import App, Context, new_event

    app = App("inventory")

    @app.subscriber("reserve-stock", topic="orders", filter="type = 'com.shop.order.placed'",
                    concurrency=4)
    async def reserve(event, ctx: Context) -> None:
        await ctx.publish(new_event("com.shop.inventory.reserved", "/inventory", {...}),
                          topic="inventory")

Nothing connects at import. `await app.start()` (or `polybus run module:app`)
resolves the provider from polybus.toml / ``POLYBUS_*`` (the embedded local
bus by default), runs the startup hooks, provisions every subscription and
starts the runtime (polybus.core.runtime). `await app.stop()` shuts down
cleanly: stop leasing, let handlers finish within the grace period, release
the rest, run the shutdown hooks, close the bus.

Issue 20: ``App(name, database=URL_or_Engine)`` (or ``[inbox] url`` in
polybus.toml) gives the app a database for ``@app.subscriber(...,
idempotent=True)`` (polybus.core.consistency.inbox) and for sagas declared
with ``app.saga(...)`` (polybus.core.consistency.saga). See docs/consistency.md.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from cloudevents.core.v1.event import CloudEvent

from polybus.core.alarms import AlarmSettings, Monitor, parse_alarms
from polybus.core.bus import Bus, Subscription
from polybus.core.config import Config, load_config
from polybus.core.contract import DEFAULT_TOPIC, DeliveryPolicy
from polybus.core.errors import Problem, ValidationError
from polybus.core.extras import require
from polybus.core.runtime import RuntimeSettings, Worker, bind_handler
from polybus.core.runtime.handlers import HandlerCall
from polybus.core.runtime.metrics import prometheus_text

if TYPE_CHECKING:  # SQLAlchemy is the optional `sql` extra, imported when a database is used
    from sqlalchemy import Engine

    from polybus.core.consistency.inbox import Inbox
    from polybus.core.consistency.saga import Saga, SagaRunner

log = logging.getLogger("polybus.app")
F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Any]


@dataclass(frozen=True)
class SubscriberSpec:
    """One subscription an App declares: where, what, how, and the handler."""

    name: str
    handler: Callable[..., Any]
    topic: str = DEFAULT_TOPIC
    filter: Any = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    concurrency: int = 1
    idempotent: bool = False  # issue 20: run inside the inbox transaction


class App:
    """A service: subscriptions with handlers, lifecycle hooks, and publishing."""

    def __init__(
        self,
        name: str,
        *,
        config: Config | str | os.PathLike[str] | None = None,
        provider: str | None = None,
        settings: RuntimeSettings | None = None,
        connect: Callable[[], Bus] | None = None,
        database: str | Engine | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.provider = provider
        self.settings = settings or RuntimeSettings()
        self.subscribers: list[SubscriberSpec] = []
        self.publications: dict[str, set[str]] = {}
        self._connect = connect
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self.bus: Bus | None = None
        self.worker: Worker | None = None
        self.ready = False
        self._owns_bus = True
        self._stop_requested: asyncio.Event | None = None
        self.monitor: Monitor | None = None  # lag gauge and alarms (issue 16)
        self.database = database  # issue 20: the inbox's and the sagas' database
        self.inbox: Inbox | None = None
        self.sagas: dict[str, SagaRunner] = {}
        self._saga_ticks: dict[str, float] = {}
        self._engine: Engine | None = None
        self._timers: list[asyncio.Task[None]] = []

    # declaring ------------------------------------------------------------------

    def subscriber(
        self,
        name: str,
        *,
        topic: str = DEFAULT_TOPIC,
        filter: Any = None,
        policy: DeliveryPolicy | None = None,
        concurrency: int = 1,
        idempotent: bool = False,
    ) -> Callable[[F], F]:
        """Declare a subscription handled by the decorated function (sync or async).

        `idempotent` runs the handler inside the inbox transaction (needs a
        database): a redelivered event is acked without calling it again,
        and ``ctx.connection`` / ``ctx.session`` commit with the inbox row.
        """
        if any(s.name == name for s in self.subscribers):
            raise ValidationError(
                f"app {self.name!r}", [Problem("subscriber", name, "declared twice")]
            )
        if concurrency < 1:
            raise ValidationError(
                f"subscriber {name!r}", [Problem("concurrency", concurrency, "must be >= 1")]
            )

        def decorate(func: F) -> F:
            bind_handler(func)  # a handler that cannot take an event fails here, at import
            spec = SubscriberSpec(
                name, func, topic, filter, policy or DeliveryPolicy(), concurrency, idempotent
            )
            self.subscribers.append(spec)
            return func

        return decorate

    def saga(
        self,
        saga: Saga,
        *,
        topic: str = DEFAULT_TOPIC,
        subscription: str | None = None,
        policy: DeliveryPolicy | None = None,
        concurrency: int = 1,
        tick: float = 1.0,
        outbox: bool = False,
    ) -> SagaRunner:
        """Run `saga` in this app: replies on `topic`, timeouts checked every `tick` seconds.

        Declares the reply subscription (default name ``<saga>-saga``, filtered
        to the reply types) and returns the runner; call ``runner.start(id,
        data)`` (from a handler or after ``app.start()``) to begin one.
        `outbox` writes the saga's commands to the transactional outbox of the
        app's database, atomically with each transition; a relay on that
        database must run (``polybus run --outbox-db URL``, docs/outbox.md).
        """
        from polybus.core.consistency.saga import SagaRunner

        if saga.name in self.sagas:
            raise ValidationError(f"app {self.name!r}", [Problem("saga", saga.name, "declared twice")])
        if not tick > 0:
            raise ValidationError(f"saga {saga.name!r}", [Problem("tick", tick, "must be > 0 seconds")])
        runner = SagaRunner(saga, outbox=outbox)
        types = saga.reply_types()
        reply_filter = "type IN (" + ", ".join(_quoted(t) for t in types) + ")" if types else None

        def on_reply(event: CloudEvent) -> None:
            runner.handle_reply(event)

        on_reply.__qualname__ = f"saga {saga.name}"
        self.subscriber(
            subscription or f"{saga.name}-saga",
            topic=topic,
            filter=reply_filter,
            policy=policy,
            concurrency=concurrency,
        )(on_reply)
        self.sagas[saga.name] = runner
        self._saga_ticks[saga.name] = tick
        return runner

    def publishes(self, topic: str, *event_types: str) -> None:
        """Declare that the app publishes `event_types` to `topic` (for its AsyncAPI document)."""
        self.publications.setdefault(topic, set()).update(event_types)

    def on_startup(self, func: F) -> F:
        """Run `func` (sync or async) before the subscriptions start."""
        self._startup.append(func)
        return func

    def on_shutdown(self, func: F) -> F:
        """Run `func` (sync or async) after the handlers stopped, before the bus closes."""
        self._shutdown.append(func)
        return func

    # running --------------------------------------------------------------------

    async def start(self, *, concurrency: int | None = None, bus: Bus | None = None) -> None:
        """Connect, run startup hooks, provision every subscription and start consuming.

        `concurrency` overrides every subscriber's own (``polybus run --concurrency``);
        `bus` uses a bus the caller built (the test kit, several apps in one
        process) instead of connecting; `stop()` then leaves it open.
        """
        loop = asyncio.get_running_loop()
        alarms = self._alarm_settings()  # issue 16: a bad [alarms] table fails before connecting
        self._stop_requested = asyncio.Event()
        self._owns_bus = bus is None
        connected: Bus = (
            bus if bus is not None else await loop.run_in_executor(None, self._make_bus)
        )
        self.bus = connected
        self.worker = Worker(connected, self.settings)
        await loop.run_in_executor(None, self._open_database)  # issue 20: inbox and sagas
        for hook in self._startup:
            await _call_hook(hook)
        for spec in self.subscribers:
            sub = await loop.run_in_executor(None, partial(_subscribe, connected, spec))
            self.worker.add(sub, self._handler(spec), concurrency or spec.concurrency)
        await self.worker.start()
        self._start_saga_timers()  # issue 20: step timeouts
        self._start_monitor(connected, alarms)  # issue 16: lag gauge and alarms
        self.ready = True
        log.info(
            "%s: started on %s (%d subscription(s))",
            self.name,
            connected.provider,
            len(self.subscribers),
        )

    async def stop(self) -> None:
        """Stop cleanly: no new leases, in-flight handlers finish or are released, hooks, close."""
        self.ready = False
        if self.worker is None:
            return
        if self.monitor is not None:  # issue 16: lag gauge and alarms
            await self.monitor.stop()
            self.monitor = None
        for timer in self._timers:  # issue 20: saga timeouts
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        await self.worker.stop()
        for hook in self._shutdown:
            try:
                await _call_hook(hook)
            except Exception:
                log.exception("%s: shutdown hook failed", self.name)
        await self.worker.close(close_bus=self._owns_bus)  # a bus passed to start() is the caller's
        self.worker = None
        if self._engine is not None and not _is_engine(self.database):  # ours, made from a URL
            self._engine.dispose()
        self._engine = None
        log.info("%s: stopped", self.name)

    def request_stop(self) -> None:
        """Ask a running `serve()` to stop (what SIGTERM and SIGINT do)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(self, *, concurrency: int | None = None, handle_signals: bool = True) -> None:
        """Start, run until SIGTERM/SIGINT (or `request_stop()`), then stop cleanly."""
        await self.start(concurrency=concurrency)
        assert self._stop_requested is not None
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stop_requested.wait()
        finally:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            await self.stop()

    def run(self, *, concurrency: int | None = None) -> None:
        """Block running the service until SIGTERM or SIGINT (a script's ``app.run()``)."""
        asyncio.run(self.serve(concurrency=concurrency))

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # publishing ------------------------------------------------------------------

    async def publish(
        self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC
    ) -> None:
        """Publish from async code outside handlers, without blocking the loop."""
        if self.worker is None:
            raise ValidationError(
                f"app {self.name!r}", [Problem("publish", topic, "the app is not started")]
            )
        await self.worker.publish(events, topic)

    # observing -------------------------------------------------------------------

    def metrics(self) -> str:
        """Prometheus text for every subscription (empty before start)."""
        if self.worker is None:
            return ""
        monitor = self.monitor  # issue 16: the latest lag gauge and the firing alarms
        backlog = [] if monitor is None else list(monitor.backlog.values())
        alarms = [] if monitor is None else [(a.rule, a.subscription) for a in monitor.firing()]
        text = prometheus_text(self.worker.stats(), self.name, backlog, alarms)
        return text + self._inbox_metrics()

    def _inbox_metrics(self) -> str:
        """Issue 20: duplicates the idempotent inbox acked without calling the handler."""
        if self.inbox is None or not self.inbox.stats:
            return ""
        lines = [
            "# HELP polybus_inbox_duplicates_total Redelivered events acked without calling the handler.",
            "# TYPE polybus_inbox_duplicates_total counter",
        ]
        for name, stats in sorted(self.inbox.stats.items()):
            lines.append(
                f'polybus_inbox_duplicates_total{{app="{self.name}",subscription="{name}"}} '
                f"{stats.duplicates}"
            )
        return "\n".join(lines) + "\n"

    def alarm_detail(self) -> str:
        """One line per firing alarm (for the /readyz body); empty when none fires."""
        return "" if self.monitor is None else self.monitor.detail()

    def _alarm_settings(self) -> AlarmSettings:
        """Issue 16: the [alarms] table of the app's configuration."""
        config = self.config if isinstance(self.config, Config) else load_config(self.config)
        return parse_alarms(config.settings("alarms"))

    def _start_monitor(self, bus: Bus, alarms: AlarmSettings) -> None:
        """Issue 16: read the lag gauge and evaluate the alarm rules while running."""
        worker = self.worker
        assert worker is not None
        self.monitor = Monitor(bus, lambda: [s for s, _ in worker.stats()], alarms, self.name)
        self.monitor.start()

    # issue 20: the database of the inbox and the sagas ------------------------------

    def _open_database(self) -> None:
        """Resolve the database (argument, else ``[inbox] url``) when something needs it."""
        needs = [s.name for s in self.subscribers if s.idempotent]
        config = self.config if isinstance(self.config, Config) else load_config(self.config)
        table = config.settings("inbox")
        if not needs and not self.sagas and self.database is None and not table:
            return
        require("the idempotent inbox and sagas", ("sqlalchemy",), "sql")
        from polybus.core.consistency.inbox import Inbox, open_database, parse_inbox_settings

        url, settings = parse_inbox_settings(table)
        database = self.database if self.database is not None else url
        if database is None:
            if not needs and not self.sagas:
                return
            raise ValidationError(
                f"app {self.name!r}",
                [
                    Problem(
                        "database",
                        None,
                        f"needed by {', '.join(needs + sorted(self.sagas))}: pass "
                        "App(name, database=URL) or set [inbox] url in polybus.toml",
                    )
                ],
            )
        engine = open_database(database)
        self._engine = engine
        self.inbox = Inbox(engine, settings)
        self.inbox.setup()
        worker = self.worker
        assert worker is not None
        for runner in self.sagas.values():
            runner.bind(engine, worker.publish_now)

    def _handler(self, spec: SubscriberSpec) -> HandlerCall:
        call = bind_handler(spec.handler)
        if not spec.idempotent:
            return call
        from polybus.core.consistency.inbox import idempotent

        assert self.inbox is not None
        return idempotent(call, self.inbox, spec.name)

    def _start_saga_timers(self) -> None:
        for name, runner in self.sagas.items():
            self._timers.append(asyncio.create_task(_expire_loop(runner, self._saga_ticks[name])))

    def with_settings(self, **changes: Any) -> App:
        """Change runtime settings before start (e.g. ``grace=5``); returns the app."""
        self.settings = replace(self.settings, **changes)
        return self

    def _make_bus(self) -> Bus:
        if self._connect is not None:
            return self._connect()
        from polybus.adapters import connect

        return connect(self.config, provider=self.provider)


def _subscribe(bus: Bus, spec: SubscriberSpec) -> Subscription:
    return bus.subscribe(
        spec.name, spec.handler, topic=spec.topic, filter=spec.filter, policy=spec.policy
    )


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _is_engine(database: object) -> bool:
    return database is not None and not isinstance(database, str)


async def _expire_loop(runner: SagaRunner, tick: float) -> None:
    """Issue 20: compensate the sagas whose step timed out, every `tick` seconds."""
    while True:
        await asyncio.sleep(tick)
        try:
            await asyncio.to_thread(runner.expire)
        except Exception:  # a database hiccup: the next tick tries again
            log.exception("saga %s: the timeout check failed", runner.saga.name)


async def _call_hook(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result
