"""The SimPy engine: services with workers, synchronous calls, a broker, read models, faults.

Processes are small generator functions and time is only ever ``env.now``.
Arrivals come from `sim.population` as arrays (one source process per
workload, never one per device). A flow instance is a process at its entry
service; a synchronous call is a child process the caller waits for while
holding its worker (a layered queue); a publish hands the event to the broker,
which delivers it to every subscriber with latency, quota, retries and
dead-lettering from the provider profile.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any, Protocol, cast

import simpy

from polybus.sim.broker import BrokerProfile, load_profile
from polybus.sim.distributions import Uniform
from polybus.sim.host import SharedCpu
from polybus.sim.metrics import ERROR, OK, TIMEOUT, FlowStats, Recorder, StationStats, TopicStats
from polybus.sim.population import ArrivalSource, windows
from polybus.sim.results import Replication
from polybus.sim.speed import SpeedProcess
from polybus.sim.streams import Stream, Streams
from polybus.sim.topology import Call, Fault, Publish, ReadModel, Scenario, Service, Topology

Proc = Generator[simpy.Event, Any, int]


class Ctx:
    """One flow instance: when it started, what is still pending, where its row, its open joins."""

    __slots__ = ("flow", "joins", "pending", "row", "t0")

    def __init__(self, flow: FlowStats, t0: float) -> None:
        self.flow = flow
        self.t0 = t0
        self.pending = 1
        self.row = -1
        self.joins: dict[str, set[str]] | None = None


class Joins(Protocol):
    """A flow instance's partial joins: join service -> the topics it has handled so far."""

    joins: dict[str, set[str]] | None


def join_input(ctx: Joins, service: Service, topic: str) -> bool:
    """Record that `service` handled `topic` for this flow instance; True when that completes its join.

    The partial join lives on the flow instance, so its memory goes with it; a
    completed join is removed (a later input starts a new one).
    """
    if ctx.joins is None:
        ctx.joins = {}
    got = ctx.joins.setdefault(service.name, set())
    got.add(topic)
    if not got.issuperset(service.consumes):
        return False
    del ctx.joins[service.name]
    return True


def chosen_publishes(svc: Service, route: Stream | None) -> Iterator[Publish]:
    """The publications one visit makes, drawing from the station's `route` stream lazily.

    A `one_of` group draws once and takes the member its draw falls in; a
    lone publication with p < 1 draws for itself. Each draw happens when the
    next publication is asked for (after the previous publish), so the
    simulator and the live run draw in the same order.
    """
    group, u, acc = None, 0.0, 0.0
    for pub in svc.publishes:
        if pub.group is not None:
            if pub.group != group:
                assert route is not None
                group, u, acc = pub.group, route.next(), 0.0
            lo, acc = acc, acc + pub.p
            if not lo <= u < acc:
                continue
        elif pub.p < 1 and route is not None and route.next() >= pub.p:
            continue
        yield pub


def open_joins(flows: Iterable[Any]) -> int:
    """Partial joins still waiting for an input, over the flow instances in progress."""
    return sum(len(c.joins) for c in flows if c.joins)


class FaultWindows:
    """Outage and slowdown windows of a station (simulated or live): `faults` is set by the station."""

    faults: tuple[Fault, ...]

    def down(self, t: float) -> bool:
        """True during an outage."""
        return any(f.kind == "outage" and f.start <= t < f.end for f in self.faults)

    def factor(self, t: float) -> float:
        """Slowdown factor at time t (1 outside slowdowns)."""
        k = 1.0
        for f in self.faults:
            if f.kind == "slowdown" and f.start <= t < f.end:
                k *= f.factor
        return k


class Station(FaultWindows):
    """A service or a read-model projector: lanes of workers and a service-time stream."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        workers: int,
        partitions: int,
        stream: Stream,
        stats: StationStats,
        faults: Sequence[Fault],
    ) -> None:
        self.name = name
        self.lanes = [simpy.Resource(env, capacity=workers) for _ in range(partitions)]
        self.lane0 = self.lanes[0]
        self.acts = False  # errors, calls or publishes to do after the work
        self.partitions = partitions
        self.stream = stream
        self.stats = stats
        self.faults = tuple(faults)
        self.service: Service | None = None
        self.read_model: ReadModel | None = None
        self.errors: Stream | None = None
        self.route: Stream | None = None
        self.settle: Stream | None = None  # the service's settle_time, when it has one
        self.host: SharedCpu | None = None  # the CPUs its work shares, when it has a host
        self.bus_host: SharedCpu | None = None  # the same, when the bus runs in that host too


class Topic:
    """A broker topic: fixed one-second quota windows, batching, delivery with retries."""

    def __init__(
        self, name: str, profile: BrokerProfile, streams: Streams, stats: TopicStats
    ) -> None:
        self.name = name
        self.profile = profile
        self.publish_latency = streams.stream(f"broker/{name}/publish", profile.publish_latency)
        self.delivery_latency = streams.stream(f"broker/{name}/delivery", profile.delivery_latency)
        self.stats = stats
        self.subscribers: list[Station] = []
        self.window = -1
        self.used = 0
        self.d_window = -1
        self.d_used = 0
        self.batch: list[Any] | None = None

    def admit(self, now: float) -> bool:
        """One publish request against the quota of the current one-second window."""
        quota = self.profile.publish_quota
        if quota is None:
            return True
        w = math.floor(now)
        if w != self.window:
            self.window, self.used = w, 0
        if self.used < quota:
            self.used += 1
            return True
        return False

    def admit_delivery(self, now: float) -> bool:
        """One delivery against the delivery quota of the current one-second window."""
        quota = self.profile.delivery_quota
        if quota is None:
            return True
        w = math.floor(now)
        if w != self.d_window:
            self.d_window, self.d_used = w, 0
        if self.d_used < quota:
            self.d_used += 1
            return True
        return False


class Model:
    """One topology under one replication's streams, ready to `run()`."""

    def __init__(
        self, scenario: Scenario, topology: Topology, streams: Streams, provider: str | None = None
    ) -> None:
        self.sc = scenario
        self.top = topology
        self.env = simpy.Environment()
        self.streams = streams
        self.rec = Recorder(scenario.warmup, scenario.duration, scenario.stale_grid)
        self.warmup = scenario.warmup
        self.provider = provider or topology.provider or scenario.provider
        self.stations: dict[str, Station] = {}
        self.topics: dict[str, Topic] = {}
        # the host's drifting speed, when the topology has one: a factor on every time drawn
        self.speed = (
            None if topology.speed is None else SpeedProcess(topology.speed, streams.rng("speed"))
        )
        self.hosts = {
            name: SharedCpu(self.env, h.cpus, scenario.warmup) for name, h in topology.hosts.items()
        }
        self.rec.hosts = self.hosts
        self.joins_abandoned = 0  # flow instances that ended with a join still missing an input
        for w in scenario.workloads:
            self.rec.flows[w.flow] = FlowStats(w.flow)
        for s in topology.services.values():
            st = self._station(s.name, s.workers, s.partitions, s.service_time)
            st.service = s
            st.acts = bool(s.error_rate > 0 or s.calls or s.publishes)
            if s.error_rate > 0:
                st.errors = streams.stream(f"errors/{s.name}", Uniform(0.0, 1.0))
            if any(p.p < 1 or p.group is not None for p in s.publishes):
                st.route = streams.stream(f"route/{s.name}", Uniform(0.0, 1.0))
            if s.settle_time is not None:
                st.settle = streams.stream(f"settle/{s.name}", s.settle_time)
            if s.host is not None:
                st.host = self.hosts[s.host]
                if topology.hosts[s.host].in_process_bus:
                    st.bus_host = st.host
        for r in topology.read_models.values():
            st = self._station(r.name, r.workers, 1, r.projection_time)
            st.read_model = r
            self.rec.windows[r.name] = []
        names = {p.topic for s in topology.services.values() for p in s.publishes} | set(
            topology.topics
        )
        for name in sorted(names):
            self.topics[name] = self._topic(name)

    def _station(self, name: str, workers: int, partitions: int, dist: Any) -> Station:
        stats = StationStats(workers * partitions)
        self.rec.stations[name] = stats
        faults = [f for f in self.sc.faults if f.service == name]
        return self._register(
            Station(
                self.env,
                name,
                workers,
                partitions,
                self.streams.stream(f"service/{name}", dist),
                stats,
                faults,
            )
        )

    def _work(self, host: SharedCpu | None, t: float) -> simpy.Event:
        """`t` s of work: on `host`'s shared CPUs, or a plain delay without a host."""
        return self.env.timeout(t) if host is None else host.work(t)

    def _scaled(self, t: float) -> float:
        """A time drawn now (a settle time, a broker latency), times the host's speed factor."""
        return t if self.speed is None else t * self.speed.at(self.env.now)

    def _register(self, st: Station) -> Station:
        self.stations[st.name] = st
        return st

    def _topic(self, name: str) -> Topic:
        overrides = dict(self.top.topics.get(name, {}))
        provider = overrides.pop("provider", self.provider)
        stats = TopicStats()
        self.rec.topics[name] = stats
        topic = Topic(name, load_profile(provider, overrides), self.streams, stats)
        topic.subscribers = [self.stations[n] for n in self.top.subscribers(name)]
        return topic

    # -- running ---------------------------------------------------------------

    def run(self) -> Recorder:
        """Simulate [0, duration) and return the filled recorder."""
        env = self.env
        for w in self.sc.workloads:
            env.process(
                self._source(w.flow, ArrivalSource(w, self.streams.rng(f"arrivals/{w.flow}")))
            )
        env.process(self._sampler())
        env.process(self._mark_warmup())
        env.run(until=self.sc.duration)
        self._tick_all(self.sc.duration)
        for host in self.hosts.values():
            host.sync()
        return self.rec

    @property
    def joins_open(self) -> int:
        """Partial joins of flow instances still in progress (at the end of a run: left open)."""
        return open_joins(self.rec.live)

    def _tick_all(self, now: float) -> None:
        for st in self.rec.stations.values():
            st.tick(now)

    def _mark_warmup(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.sc.warmup)
        self._tick_all(self.sc.warmup)
        for st in self.rec.stations.values():
            st.area0 = st.area
            st.busy_area0 = st.busy_area
        for host in self.hosts.values():
            host.mark()

    def _sampler(self) -> Generator[simpy.Event, Any, None]:
        env, dt = self.env, self.sc.sample_interval
        while True:
            self.rec.sample(env.now)
            yield env.timeout(dt)

    def _source(self, flow: str, src: ArrivalSource) -> Generator[simpy.Event, Any, None]:
        env = self.env
        stats = self.rec.flows[flow]
        target = self.top.entry[flow]
        station = self.stations.get(target)
        topic = self.topics.get(target)
        for t0, t1 in windows(self.sc.duration, self.sc.chunk):
            times, keys = src.window(t0, t1)
            for t, key in zip(times.tolist(), keys.tolist(), strict=True):
                yield env.timeout(t - env.now)
                ctx = Ctx(stats, t)
                if station is not None:
                    env.process(self._flow(station, key, ctx))
                else:
                    assert topic is not None
                    env.process(self._flow_topic(topic, key, ctx))

    def _flow(self, station: Station, key: int, ctx: Ctx) -> Generator[simpy.Event, Any, None]:
        self.rec.live.add(ctx)
        status = yield from self.handle(station, key, ctx)
        self._respond(ctx, status)

    def _flow_topic(self, topic: Topic, key: int, ctx: Ctx) -> Generator[simpy.Event, Any, None]:
        self.rec.live.add(ctx)
        status = yield from self.publish(topic, key, ctx)
        self._respond(ctx, status)

    def _respond(self, ctx: Ctx, status: int) -> None:
        f = ctx.flow
        ctx.row = len(f.t0)
        latency = self.env.now - ctx.t0
        f.t0.append(ctx.t0)
        f.response.append(latency)
        f.status.append(status)
        ctx.pending -= 1
        if ctx.pending == 0:  # nothing asynchronous pending: complete now (the _settle fast path)
            self.rec.live.discard(ctx)
            self.joins_abandoned += bool(ctx.joins)
            f.completion.append(latency if status == OK else math.nan)
        else:
            f.completion.append(math.nan)

    def _settle(self, ctx: Ctx) -> None:
        ctx.pending -= 1
        if ctx.pending == 0:
            self.rec.live.discard(ctx)
            self.joins_abandoned += bool(ctx.joins)
            if ctx.flow.status[ctx.row] == OK:
                ctx.flow.completion[ctx.row] = self.env.now - ctx.t0

    def _fail_async(self, ctx: Ctx) -> None:
        if ctx.row >= 0:
            ctx.flow.status[ctx.row] = ctx.flow.status[ctx.row] or ERROR

    # -- a visit to a station --------------------------------------------------

    def handle(
        self, st: Station, key: int, ctx: Ctx, write_time: float = 0.0, topic: str | None = None
    ) -> Proc:
        """Queue for a worker, serve, then make the service's calls and publishes.

        `topic` is the delivered event's topic (None for a flow's entry or a
        call); a join service acts only on the visit that completes its join.
        """
        env = self.env
        now = env.now
        if st.faults and st.down(now):
            return ERROR
        s = st.stream.next()
        stats = st.stats
        stats.tick(now)
        stats.n += 1
        warmup = self.warmup
        if now >= warmup:
            stats.arrivals += 1
        speed = self.speed
        if speed is not None:  # the host's speed when the work is drawn
            s *= speed.at(now)
        host = st.host
        if host is not None:
            host.offer(s)  # asked of the host on arrival, even if it waits for a worker
        lane = st.lanes[key % st.partitions] if st.partitions > 1 else st.lane0
        req = lane.request()
        yield req
        start = env.now
        stats.tick(start)
        stats.busy_n += 1
        status = OK
        if st.faults:
            if st.down(start):
                status, s = ERROR, 0.0
            else:
                s *= st.factor(start)
        yield env.timeout(s) if host is None else host.work(s, offered=True)  # the hottest path
        svc = st.service
        if status == OK and st.acts and svc is not None:
            if st.errors is not None and st.errors.next() < svc.error_rate:
                status = ERROR
            if status == OK and (not svc.join or topic is None or join_input(ctx, svc, topic)):
                if svc.calls:
                    status = yield from self._calls(svc.calls, key, ctx)
                if status == OK and svc.publishes:
                    status = yield from self._publishes(st, svc, key, ctx)
                if st.settle is not None:  # the worker finishes up while the caller goes on
                    t = self._scaled(st.settle.next())
                    env.process(self._settle_visit(st, lane, req, now, start, t))
                    return status
        self._leave(st, lane, req, now, start)
        rm = st.read_model
        if rm is not None and status == OK:
            since = ctx.t0 if rm.since == "flow" else write_time
            if since >= warmup:
                self.rec.windows[st.name].append(env.now - since)
        return status

    def _settle_visit(
        self, st: Station, lane: simpy.Resource, req: Any, arrived: float, start: float, t: float
    ) -> Generator[simpy.Event, Any, None]:
        yield self._work(st.host, t)
        self._leave(st, lane, req, arrived, start)

    def _leave(
        self, st: Station, lane: simpy.Resource, req: Any, arrived: float, start: float
    ) -> None:
        """Free the visit's worker and account for it (its hold includes any settle time)."""
        lane.release(req)
        end = self.env.now
        stats = st.stats
        stats.tick(end)
        stats.n -= 1
        stats.busy_n -= 1
        stats.hold += end - start
        stats.hold_n += 1
        if arrived >= self.warmup:
            stats.sojourn.append(end - arrived)
            stats.waits.append(start - arrived)

    def _calls(self, calls: Sequence[Call], key: int, ctx: Ctx) -> Proc:
        for call in calls:
            status = ERROR
            for attempt in range(call.retries + 1):
                if attempt and call.backoff > 0:
                    yield self.env.timeout(call.backoff * call.multiplier ** (attempt - 1))
                status = yield from self._attempt(call, key, ctx)
                if status == OK:
                    break
            if status != OK:
                return status
        return OK

    def _attempt(self, call: Call, key: int, ctx: Ctx) -> Proc:
        env = self.env
        targets = call.targets
        if len(targets) == 1 and call.join == 1:
            proc = env.process(self.handle(self.stations[targets[0]], key, ctx))
            if call.timeout is None:
                return (yield proc)
            yield proc | env.timeout(call.timeout)
            return cast(int, proc.value) if proc.triggered else TIMEOUT
        done = env.event()
        counts = [0, 0]
        need, n = call.join, len(targets)

        def settle(ev: simpy.Event) -> None:
            if done.triggered:
                return
            counts[0 if ev.value == OK else 1] += 1
            if counts[0] >= need:
                done.succeed(OK)
            elif counts[1] > n - need:
                done.succeed(ERROR)

        for i, name in enumerate(targets):
            env.process(self.handle(self.stations[name], key + i, ctx)).callbacks.append(settle)
        if call.timeout is None:
            return (yield done)
        yield done | env.timeout(call.timeout)
        return cast(int, done.value) if done.triggered else TIMEOUT

    def _publishes(self, st: Station, svc: Service, key: int, ctx: Ctx) -> Proc:
        for pub in chosen_publishes(svc, st.route):
            status = yield from self.publish(self.topics[pub.topic], key, ctx, st.bus_host)
            if status != OK:
                return status
        return OK

    # -- the broker --------------------------------------------------------------

    def publish(self, topic: Topic, key: int, ctx: Ctx, host: SharedCpu | None = None) -> Proc:
        """Publish one event (batched if the profile batches); then deliver it to every subscriber.

        `host`: the publisher's CPUs, which serve the publish latency when the bus runs
        in-process there (None: a delay).
        """
        env = self.env
        write_time = env.now
        counted = write_time >= self.sc.warmup
        prof = topic.profile
        delays: list[float] = []
        if prof.batch_size > 1 and prof.linger > 0:
            ok = yield from self._join_batch(topic)
            delays = [self._scaled(topic.delivery_latency.next()) for _ in topic.subscribers]
        else:
            ok = yield from self._request(topic, delays, counted, host)
        if not ok:
            topic.stats.publish_failed += counted
            return ERROR
        topic.stats.published += counted
        for sub, delay in zip(topic.subscribers, delays, strict=True):
            ctx.pending += 1
            topic.stats.backlog += 1
            env.process(self._deliver(topic, sub, key, ctx, write_time, delay))
        return OK

    def _request(
        self,
        topic: Topic,
        delays: list[float] | None = None,
        counted: bool = True,
        host: SharedCpu | None = None,
    ) -> Generator[simpy.Event, Any, bool]:
        """One publish request: quota, throttling retries, latency; delivery delays drawn at admission."""
        prof = topic.profile
        for retry in range(prof.throttle_retries + 1):
            if topic.admit(self.env.now):
                topic.stats.requests += counted
                latency = self._scaled(topic.publish_latency.next())
                if delays is not None:
                    delays.extend(
                        self._scaled(topic.delivery_latency.next()) for _ in topic.subscribers
                    )
                yield self._work(host, latency)
                return True
            topic.stats.throttled += counted
            if retry < prof.throttle_retries:
                yield self.env.timeout(prof.throttle_delay(retry))
        return False

    def _join_batch(self, topic: Topic) -> Generator[simpy.Event, Any, bool]:
        """Batches close at the end of their `linger` slot or when `batch_size` events joined."""
        env, prof = self.env, topic.profile
        slot = math.floor(env.now / prof.linger)
        b = topic.batch
        if b is None or b[0] != slot:
            b = [slot, 0, env.event(), False]
            topic.batch = b
            env.process(self._flush_at(topic, b, (slot + 1) * prof.linger))
        b[1] += 1
        if b[1] >= prof.batch_size:
            topic.batch = None
            env.process(self._flush(topic, b))
        ok = yield b[2]
        return bool(ok)

    def _flush_at(self, topic: Topic, b: list[Any], t: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(0.0, t - self.env.now))
        if not b[3]:
            if topic.batch is b:
                topic.batch = None
            yield from self._flush(topic, b)

    def _flush(self, topic: Topic, b: list[Any]) -> Generator[simpy.Event, Any, None]:
        if b[3]:
            return
        b[3] = True
        ok = yield from self._request(topic, None, self.env.now >= self.sc.warmup)
        b[2].succeed(ok)

    def _deliver(
        self, topic: Topic, sub: Station, key: int, ctx: Ctx, write_time: float, delay: float
    ) -> Generator[simpy.Event, Any, None]:
        env, prof = self.env, topic.profile
        yield self._work(sub.bus_host, delay)  # an in-process bus delivers on the host's CPUs
        attempt = 1
        while True:
            while not topic.admit_delivery(env.now):
                yield env.timeout(math.floor(env.now) + 1 - env.now)
            topic.stats.deliveries += write_time >= self.sc.warmup
            status = yield from self.handle(sub, key, ctx, write_time, topic.name)
            if status == OK:
                break
            delay = prof.retry_delay(attempt)
            if attempt >= prof.max_attempts or env.now + delay - write_time > prof.max_age:
                topic.stats.dead_lettered += write_time >= self.sc.warmup
                if sub.read_model is not None and write_time >= self.sc.warmup:
                    self.rec.lost[sub.name] = self.rec.lost.get(sub.name, 0) + 1
                self._fail_async(ctx)
                break
            yield env.timeout(delay)
            attempt += 1
        topic.stats.backlog -= 1
        self._settle(ctx)


def simulate(
    scenario: Scenario, topology: str, seed: int, replication: int, provider: str | None = None
) -> Replication:
    """Run one replication of one topology with the SimPy engine; its typed measures."""
    model = Model(scenario, scenario.topologies[topology], Streams(seed, replication), provider)
    return model.run().result(scenario.faults)
