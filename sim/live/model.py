"""The live twin of `sim.engine.Model`: the same visit, calls and publishes, in asyncio and real time.

A visit draws its service time from the station's named stream, queues for a
worker (an asyncio semaphore per lane; for a subscriber the runtime's
per-subscription concurrency is the pool), sleeps the drawn time, then makes
its calls and publishes while holding the worker, exactly as the SimPy
engine's ``handle``. Everything measured goes into a `sim.metrics.Recorder`
in run time, and `finish()` turns it into a `Replication` at the end of the
window (what finishes later is not counted, as in the simulation).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

from polybus.core.tracing.records import SpanRecord
from polybus.sim.distributions import Uniform
from polybus.sim.engine import FaultWindows, chosen_publishes, join_input, open_joins
from polybus.sim.live.clock import RunClock
from polybus.sim.metrics import ERROR, OK, TIMEOUT, FlowStats, Recorder, StationStats, TopicStats
from polybus.sim.results import Replication
from polybus.sim.streams import Stream, Streams
from polybus.sim.topology import Call, Fault, ReadModel, Scenario, Service, Topology

# (target station, key, flow context) -> status; in-process or over HTTP
Caller = Callable[[str, int, "LiveCtx"], Awaitable[int]]
EVENT_TYPE = "dev.polybus.sim.{topic}"
# (topic, key, flow context, write time, producer span id) -> None; raises when the publish fails
Sender = Callable[[str, int, "LiveCtx", float, str], Awaitable[None]]
MAX_SPANS = 1_000_000  # spans kept for --trace-out / calibrate (about 300 B each)


current_station: ContextVar[str] = ContextVar("current_station", default="client")
# when the last visit handled in this context got its worker (run time, s): a SERVER span's start
visit_started: ContextVar[float] = ContextVar("visit_started", default=0.0)
current_span: ContextVar[str | None] = ContextVar(
    "current_span", default=None
)  # a publish's parent


class LiveCtx:
    """One flow instance: its id, start, pending work, row (the `Live` protocol) and open joins."""

    __slots__ = ("flow", "id", "joins", "pending", "row", "t0", "trace")

    def __init__(self, flow: FlowStats, t0: float, flow_id: str) -> None:
        self.flow = flow
        self.t0 = t0
        self.id = flow_id
        self.trace = secrets.token_hex(16)
        self.pending = 1
        self.row = -1
        self.joins: dict[str, set[str]] | None = None


class LiveStation(FaultWindows):
    """A service or read-model projector: lanes of workers, its service-time stream, faults."""

    def __init__(
        self, name: str, workers: int, partitions: int, stream: Stream, stats: StationStats,
        faults: Sequence[Fault],
    ) -> None:  # fmt: skip
        self.name = name
        self.workers = workers
        self.partitions = partitions
        self.lanes = [asyncio.Semaphore(workers) for _ in range(partitions)]
        self.stream = stream
        self.stats = stats
        self.faults = tuple(faults)
        self.service: Service | None = None
        self.read_model: ReadModel | None = None
        self.errors: Stream | None = None
        self.route: Stream | None = None
        self.settle: Stream | None = None  # the service's settle_time, when it has one
        self.freed_at = -math.inf  # when a visit last left the station with every worker busy


class LiveModel:
    """One topology of a scenario, run in real time: stations, topics, flows and the recorder."""

    def __init__(self, scenario: Scenario, topology: Topology, seed: int, clock: RunClock) -> None:
        self.sc = scenario
        self.top = topology
        self.clock = clock
        self.streams = Streams(seed, 0)
        self.rec = Recorder(scenario.warmup, scenario.duration, scenario.stale_grid)
        self.stations: dict[str, LiveStation] = {}
        self.topics: dict[str, TopicStats] = {}
        self.flows: dict[str, LiveCtx] = {}
        self.caller: Caller = self.call_local
        self.sender: Sender | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.result: Replication | None = None
        self.spans: list[SpanRecord] = []  # PRODUCER per publish, CONSUMER per delivery
        self.system = "polybus"  # messaging.system of the spans: polybus.<provider> once known
        self.joins_abandoned = 0  # flow instances that ended with a join still missing an input
        self._ids = itertools.count(1)
        self._settling: set[asyncio.Future[None]] = set()  # visits finishing up after answering
        for w in scenario.workloads:
            self.rec.flows[w.flow] = FlowStats(w.flow)
        for s in topology.services.values():
            st = self._station(s.name, s.workers, s.partitions, s.service_time)
            st.service = s
            if s.error_rate > 0:
                st.errors = self.streams.stream(f"errors/{s.name}", Uniform(0.0, 1.0))
            if any(p.p < 1 or p.group is not None for p in s.publishes):
                st.route = self.streams.stream(f"route/{s.name}", Uniform(0.0, 1.0))
            if s.settle_time is not None:
                st.settle = self.streams.stream(f"settle/{s.name}", s.settle_time)
        for r in topology.read_models.values():
            st = self._station(r.name, r.workers, 1, r.projection_time)
            st.read_model = r
            self.rec.windows[r.name] = []
        names = {p.topic for s in topology.services.values() for p in s.publishes}
        for name in sorted(names | set(topology.topics)):
            self.topics[name] = self.rec.topics[name] = TopicStats()

    def _station(self, name: str, workers: int, partitions: int, dist: Any) -> LiveStation:
        stats = StationStats(workers * partitions)
        self.rec.stations[name] = stats
        faults = [f for f in self.sc.faults if f.service == name]
        st = LiveStation(
            name, workers, partitions, self.streams.stream(f"service/{name}", dist), stats, faults
        )
        self.stations[name] = st
        return st

    @property
    def done(self) -> bool:
        """True once the measurement window has closed."""
        return self.result is not None

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task the model keeps until it ends."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- the window ------------------------------------------------------------

    def mark_warmup(self) -> None:
        """Start integrating utilisation and occupancy from now (the end of the warm-up)."""
        now = self.sc.warmup
        for st in self.rec.stations.values():
            st.tick(max(now, st.last))
            st.area0 = st.area
            st.busy_area0 = st.busy_area

    def finish(self) -> Replication:
        """Close the window at the scenario's duration and compute its measures (once)."""
        if self.result is None:
            end = self.sc.duration
            for st in self.rec.stations.values():
                st.tick(max(end, st.last))
            self.result = self.rec.result(self.sc.faults)
        return self.result

    def sample(self) -> None:
        """Record flows in progress and per-topic undelivered events now."""
        if not self.done:
            self.rec.sample(self.clock.now())

    # -- flows -----------------------------------------------------------------

    def start_flow(self, flow: str, t0: float, key: int) -> None:
        """One arrival: a flow instance at its entry station or topic."""
        stats = self.rec.flows[flow]
        ctx = LiveCtx(stats, t0, f"{flow}-{next(self._ids)}")
        self.flows[ctx.id] = ctx
        self.rec.live.add(ctx)
        target = self.top.entry[flow]
        self.spawn(self._flow(target, key, ctx))

    async def _flow(self, target: str, key: int, ctx: LiveCtx) -> None:
        flow = ctx.flow.name
        if target in self.stations:
            root = secrets.token_hex(8)
            current_span.set(root)  # this task's own context: the visit's publishes are children
            status = await self.handle(self.stations[target], key, ctx)
            self.record_span(
                ctx.trace, root, None, f"{flow} {ctx.id}", "INTERNAL", target, ctx.t0,
                {"polybus.flow": flow, "polybus.sim.station": target},
            )  # fmt: skip
        else:
            status = await self.publish(target, key, ctx)
        self._respond(ctx, status)

    def _respond(self, ctx: LiveCtx, status: int) -> None:
        if self.done:
            return
        f, now = ctx.flow, self.clock.now()
        ctx.row = len(f.t0)
        latency = now - ctx.t0
        f.t0.append(ctx.t0)
        f.response.append(latency)
        f.status.append(status)
        ctx.pending -= 1
        if ctx.pending == 0:
            self._forget(ctx)
            f.completion.append(latency if status == OK else math.nan)
        else:
            f.completion.append(math.nan)

    def settle(self, ctx: LiveCtx, failed: bool = False) -> None:
        """One asynchronous consequence of the flow is handled (or dead-lettered)."""
        if self.done:
            return
        if failed and ctx.row >= 0:
            ctx.flow.status[ctx.row] = ctx.flow.status[ctx.row] or ERROR
        ctx.pending -= 1
        if ctx.pending == 0:
            self._forget(ctx)
            if ctx.row >= 0 and ctx.flow.status[ctx.row] == OK:
                ctx.flow.completion[ctx.row] = self.clock.now() - ctx.t0

    def _forget(self, ctx: LiveCtx) -> None:
        self.rec.live.discard(ctx)
        self.flows.pop(ctx.id, None)
        self.joins_abandoned += bool(ctx.joins)

    @property
    def joins_open(self) -> int:
        """Partial joins of flow instances still in progress (at the end of a run: left open)."""
        return open_joins(self.flows.values())

    # -- a visit ---------------------------------------------------------------

    async def handle(
        self, st: LiveStation, key: int, ctx: LiveCtx, write_time: float = 0.0,
        pooled: bool = True, topic: str | None = None,
    ) -> int:  # fmt: skip
        """Queue for a worker (unless the runtime already holds one: `pooled=False`), serve, act.

        `topic` is the delivered event's topic; a join service acts only on the
        visit that completes its join (as `sim.engine.Model.handle`).
        """
        clock = self.clock
        now = clock.now()
        if st.faults and st.down(now):
            return ERROR
        s = st.stream.next()
        stats = st.stats
        warm = now >= self.sc.warmup
        if not self.done:
            stats.tick(max(now, stats.last))
            stats.n += 1
            stats.arrivals += warm
        lane = st.lanes[key % st.partitions]
        settle = 0.0  # seconds the worker stays busy after acting (settle_time)
        token = current_station.set(st.name)  # the publisher of what this visit publishes
        if pooled:
            await lane.acquire()
        try:
            start = clock.now()
            visit_started.set(start)
            if not self.done:
                stats.tick(max(start, stats.last))
                stats.busy_n += 1
            status = OK
            if st.faults:
                if st.down(start):
                    status, s = ERROR, 0.0
                else:
                    s *= st.factor(start)
            await clock.sleep(s)
            svc = st.service
            if status == OK and svc is not None:
                if st.errors is not None and st.errors.next() < svc.error_rate:
                    status = ERROR
                if status == OK and (not svc.join or topic is None or join_input(ctx, svc, topic)):
                    if svc.calls:
                        status = await self._calls(svc.calls, key, ctx)
                    if status == OK and svc.publishes:
                        status = await self._publishes(st, svc, key, ctx)
                    if st.settle is not None:  # the worker finishes up after acting
                        settle = st.settle.next()
                        if not pooled:  # the runtime's slot: nothing waits for this return
                            await clock.sleep(settle)
                            settle = 0.0
        finally:
            if pooled and not settle:
                lane.release()
            current_station.reset(token)
        if settle:  # answer the caller now; the worker stays busy for the settle
            task = asyncio.ensure_future(self._settle_visit(st, lane, settle, start, now))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            return status
        end = self._leave(st, start, now)
        rm = st.read_model
        if rm is not None and status == OK and not self.done:
            since = ctx.t0 if rm.since == "flow" else write_time
            if since >= self.sc.warmup:
                self.rec.windows[st.name].append(end - since)
        return status

    async def _settle_visit(
        self, st: LiveStation, lane: Any, t: float, start: float, arrived: float
    ) -> None:
        await self.clock.sleep(t)
        lane.release()
        self._leave(st, start, arrived)

    def _leave(self, st: LiveStation, start: float, arrived: float) -> float:
        """Account for a visit whose worker is free now (its hold includes any settle time)."""
        end = self.clock.now()
        stats = st.stats
        if stats.busy_n >= stats.workers:
            st.freed_at = end
        if not self.done:
            stats.tick(max(end, stats.last))
            stats.n -= 1
            stats.busy_n -= 1
            stats.hold += end - start
            stats.hold_n += 1
            if arrived >= self.sc.warmup:
                stats.sojourn.append(end - arrived)
                stats.waits.append(start - arrived)
        return end

    async def _calls(self, calls: Sequence[Call], key: int, ctx: LiveCtx) -> int:
        for call in calls:
            status = ERROR
            for attempt in range(call.retries + 1):
                if attempt and call.backoff > 0:
                    await self.clock.sleep(call.backoff * call.multiplier ** (attempt - 1))
                status = await self._attempt(call, key, ctx)
                if status == OK:
                    break
            if status != OK:
                return status
        return OK

    async def _attempt(self, call: Call, key: int, ctx: LiveCtx) -> int:
        """One attempt: every target called at once; `join` successes needed within the timeout.

        A timed-out callee keeps working (its task is not cancelled), as in the model.
        """
        need, n = call.join, len(call.targets)
        tasks = [self.spawn(self.caller(name, key + i, ctx)) for i, name in enumerate(call.targets)]
        ok = bad = 0
        pending = set(tasks)
        loop = asyncio.get_running_loop()
        deadline = None if call.timeout is None else loop.time() + call.timeout
        while pending:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return TIMEOUT
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return TIMEOUT
            for task in done:
                if not task.cancelled() and task.exception() is None and task.result() == OK:
                    ok += 1
                else:
                    bad += 1
            if ok >= need:
                return OK
            if bad > n - need:
                return ERROR
        return ERROR

    async def call_local(self, target: str, key: int, ctx: LiveCtx) -> int:
        """An in-process synchronous call (the default caller)."""
        return await self.handle(self.stations[target], key, ctx)

    async def _publishes(self, st: LiveStation, svc: Service, key: int, ctx: LiveCtx) -> int:
        for pub in chosen_publishes(svc, st.route):
            status = await self.publish(pub.topic, key, ctx)
            if status != OK:
                return status
        return OK

    async def publish(self, topic: str, key: int, ctx: LiveCtx) -> int:
        """Publish one event; every subscriber's delivery is pending on the flow until handled."""
        assert self.sender is not None, "an event topology needs a bus (LiveModel.sender)"
        write_time = self.clock.now()
        counted = write_time >= self.sc.warmup and not self.done
        stats = self.topics[topic]
        subscribers = len(self.top.subscribers(topic))
        ctx.pending += subscribers
        stats.backlog += subscribers
        span = secrets.token_hex(8)
        publisher, parent = current_station.get(), current_span.get()
        try:
            await self.sender(topic, key, ctx, write_time, span)
        except Exception:
            ctx.pending -= subscribers
            stats.backlog -= subscribers
            stats.publish_failed += counted
            return ERROR
        stats.published += counted
        stats.requests += counted
        attributes = {
            "messaging.destination.name": topic, "messaging.system": self.system,
            "cloudevents.event_type": EVENT_TYPE.format(topic=topic),
        }  # fmt: skip
        if parent is None:  # a flow entering at the topic: the publish is the flow's root
            attributes["polybus.flow"] = ctx.flow.name
        self.record_span(
            ctx.trace, span, parent, f"send {topic}", "PRODUCER", publisher, write_time, attributes
        )
        return OK

    def record_span(
        self, trace: str, span: str, parent: str | None, name: str, kind: str, service: str,
        start: float, attributes: dict[str, Any],
    ) -> None:  # fmt: skip
        """Record a finished span (ending now) in the OpenTelemetry record format."""
        if len(self.spans) < MAX_SPANS:
            ns = self.clock.wall_ns
            self.spans.append(
                SpanRecord(trace, span, parent, name, kind, service, ns(start),
                           ns(self.clock.now()), attributes)
            )  # fmt: skip

    async def deliver(
        self, station: str, topic: str, key: int, flow_id: str, write_time: float,
        parent: str | None, last: bool, subscription: str = "",
    ) -> bool:  # fmt: skip
        """A delivery the runtime leased: serve it on its worker; False asks for a redelivery.

        A station consuming several topics has one subscription per topic, so
        its visits also queue for the station's own pool, shared by all of them
        (the simulated station's workers); one topic's subscription is the pool.
        """
        ctx = self.flows.get(flow_id)
        if ctx is None:  # the flow's window closed, or an event from before the run
            ctx = LiveCtx(FlowStats(""), write_time, flow_id)
        stats = self.topics[topic]
        stats.deliveries += write_time >= self.sc.warmup and not self.done
        st = self.stations[station]
        queued = st.freed_at > write_time  # the station was full since the publish: it waited
        start = self.clock.now()
        span = secrets.token_hex(8)
        token = current_span.set(span)
        try:
            shared = st.service is not None and len(set(st.service.consumes)) > 1
            status = await self.handle(st, key, ctx, write_time, pooled=shared, topic=topic)
        finally:
            current_span.reset(token)
        self.record_span(
            ctx.trace, span, parent, f"process {subscription}", "CONSUMER", station, start,
            {"messaging.destination.name": topic, "messaging.system": self.system,
             "messaging.destination.subscription.name": subscription,
             "polybus.sim.station": station, "polybus.sim.queued": queued},
        )  # fmt: skip
        if status == OK or last:
            if status != OK:
                stats.dead_lettered += write_time >= self.sc.warmup and not self.done
                if self.stations[station].read_model is not None and not self.done:
                    self.rec.lost[station] = self.rec.lost.get(station, 0) + 1
            stats.backlog -= 1
            self.settle(ctx, failed=status != OK)
        return status == OK
