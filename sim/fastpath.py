"""Exact vectorised engine for FIFO single-worker lanes (the vectorised Lindley recursion).

Applies when every flow enters either one station directly, or a broker topic
consumed by one station, where the station has single-worker FIFO lanes
(``workers: 1``, any ``partitions``), no calls, publishes, errors or faults,
and the broker does not combine client batching with a publish quota. Then the
departure of customer n in a lane is ``D_n = max(A_n, D_{n-1}) + S_n``, which
NumPy evaluates for a whole window at once as ``C_n + max(D_prev,
max_{k<=n}(A_k - C_{k-1}))`` with C the cumulative service time.

It draws from the same named streams in the same order as the SimPy engine, so
on the same seed both give the same customers the same waits (checked in
tests/sim). Latency quantiles come from a log histogram (0.23% bins) so memory
stays flat at tens of millions of messages; means are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from polybus.sim.broker import BrokerProfile, load_profile
from polybus.sim.metrics import (
    CDF_PERCENTS,
    QUANTILES,
    backlog_result,
    empty_quantiles,
    station_result,
)
from polybus.sim.population import ArrivalSource, windows
from polybus.sim.results import (
    Cdf,
    FlowResult,
    Measures,
    Quantiles,
    Replication,
    TopicResult,
)
from polybus.sim.streams import Stream, Streams
from polybus.sim.topology import Scenario, Topology

BINS_PER_DECADE = 1000
LOG_MIN = -7.0
N_BINS = int(13 * BINS_PER_DECADE)


def lindley_departures(
    arrivals: np.ndarray, services: np.ndarray, d_prev: float = -math.inf
) -> np.ndarray:
    """Departure times of a FIFO single server, given sorted arrivals and their service times."""
    c = np.cumsum(services)
    start_offset = np.maximum.accumulate(arrivals - (c - services))
    return c + np.maximum(start_offset, d_prev)


def lindley_waits(arrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """Waiting times in queue (W_{n+1} = max(0, W_n + S_n - A_{n+1} + A_n)) of an initially empty FIFO server."""
    return lindley_departures(arrivals, services) - services - arrivals


@dataclass(frozen=True)
class FastPlan:
    """Where the fast engine sends each flow: straight to `station`, or through `topic` first."""

    station: str
    topic: str | None
    partitions: int


def fast_plan(
    scenario: Scenario, topology: Topology, provider: str | None = None
) -> FastPlan | str:
    """The plan when the topology fits the fast engine, else the reason it does not."""
    if scenario.faults:
        return "faults need the SimPy engine"
    if topology.read_models:
        return "read models need the SimPy engine"
    if any(s.join for s in topology.services.values()):
        return "joins need the SimPy engine"
    if any(s.settle_time is not None for s in topology.services.values()):
        return "settle times need the SimPy engine"
    if topology.hosts:
        return "shared hosts need the SimPy engine"
    if topology.speed is not None:
        return "a drifting speed needs the SimPy engine"
    targets = set(topology.entry.values())
    if len(targets) != 1:
        return "flows enter at different places"
    target = targets.pop()
    topic = None
    if target in topology.topics:
        subs = topology.subscribers(target)
        if len(subs) != 1 or subs[0] not in topology.services:
            return "the entry topic needs exactly one consuming service"
        topic, station = target, subs[0]
        prof = _profile(scenario, topology, topic, provider)
        if prof.batch_size > 1 and prof.linger > 0 and prof.publish_quota is not None:
            return "client batching under a publish quota needs the SimPy engine"
    else:
        station = target
    svc = topology.services[station]
    if svc.workers != 1 or svc.calls or svc.publishes or svc.error_rate > 0:
        return f"service {station} is not a plain single-worker FIFO station"
    if len(topology.services) != 1:
        return "more than one service"
    return FastPlan(station, topic, svc.partitions)


def _profile(
    scenario: Scenario, topology: Topology, topic: str, provider: str | None
) -> BrokerProfile:
    overrides = dict(topology.topics.get(topic, {}))
    name = overrides.pop("provider", provider or topology.provider or scenario.provider)
    return load_profile(name, overrides)


class _Hist:
    """Log-spaced histogram of positive durations plus an exact sum."""

    def __init__(self) -> None:
        self.counts = np.zeros(N_BINS + 1, dtype=np.int64)
        self.zero = 0
        self.total = 0.0
        self.n = 0

    def add(self, xs: np.ndarray) -> None:
        self.n += len(xs)
        self.total += float(xs.sum())
        pos = xs[xs > 0]
        self.zero += len(xs) - len(pos)
        idx = np.clip(((np.log10(pos) - LOG_MIN) * BINS_PER_DECADE).astype(np.int64), 0, N_BINS)
        self.counts += np.bincount(idx, minlength=N_BINS + 1)

    def quantiles(self) -> Quantiles[float, tuple[float, ...]]:
        if self.n == 0:
            return empty_quantiles()
        cum = np.cumsum(self.counts) + self.zero
        p50, p95, p99, p999 = (self._at(cum, q) for q in QUANTILES)
        return Quantiles(
            self.total / self.n,
            p50,
            p95,
            p99,
            p999,
            Cdf(CDF_PERCENTS, tuple(self._at(cum, q) for q in CDF_PERCENTS)),
        )

    def _at(self, cum: np.ndarray, percent: float) -> float:
        rank = percent / 100.0 * self.n
        if rank <= self.zero:
            return 0.0
        i = int(np.searchsorted(cum, rank, side="left"))
        return float(10 ** (LOG_MIN + (i + 0.5) / BINS_PER_DECADE))


class _Admission:
    """Fixed one-second publish quota with throttled retries after deterministic backoffs."""

    def __init__(self, profile: BrokerProfile, warmup: float) -> None:
        self.p = profile
        self.warmup = warmup
        empty_i = np.empty(0, dtype=np.int64)
        # the retry pool: (time, key, attempts so far, original arrival, flow)
        self.pool: tuple[np.ndarray, ...] = (np.empty(0), empty_i, empty_i, np.empty(0), empty_i)
        self.throttled = 0
        self.failed_t0: list[np.ndarray] = []
        self.failed_at: list[np.ndarray] = []
        self.failed_f: list[np.ndarray] = []

    def window(
        self, t0: float, t1: float, times: np.ndarray, keys: np.ndarray, flows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Admitted (admit time, key, original arrival time, flow) in [t0, t1), in admission order."""
        quota = self.p.publish_quota
        if quota is None:
            return times, keys, times, flows
        out: list[tuple[np.ndarray, ...]] = []
        zeros = np.zeros(len(times), dtype=np.int64)
        for second in range(math.floor(t0), math.ceil(t1)):
            edge = min(second + 1, t1)
            lo = int(np.searchsorted(times, second, "left"))
            hi = int(np.searchsorted(times, edge, "left"))
            cand: tuple[np.ndarray, ...] = (
                times[lo:hi],
                keys[lo:hi],
                zeros[lo:hi],
                times[lo:hi],
                flows[lo:hi],
            )
            q = int(quota)
            while True:
                due = self.pool[0] < edge
                if due.any():
                    cand = tuple(
                        np.concatenate([c, p[due]]) for c, p in zip(cand, self.pool, strict=True)
                    )
                    self.pool = tuple(p[~due] for p in self.pool)
                if len(cand[0]) == 0:
                    break
                order = np.argsort(cand[0], kind="stable")
                cand = tuple(c[order] for c in cand)
                take = min(q, len(cand[0]))
                out.append(tuple(c[:take] for c in cand))
                q -= take
                rt, rk, ra, r0, rf = (c[take:] for c in cand)
                self.throttled += int((r0 >= self.warmup).sum())
                again = ra < self.p.throttle_retries
                self.failed_t0.append(r0[~again])
                self.failed_at.append(rt[~again])
                self.failed_f.append(rf[~again])
                retry = (
                    rt[again] + self.p.throttle_backoff * 2.0 ** ra[again],
                    rk[again],
                    ra[again] + 1,
                    r0[again],
                    rf[again],
                )
                self.pool = tuple(
                    np.concatenate([p, r]) for p, r in zip(self.pool, retry, strict=True)
                )
                cand = tuple(c[:0] for c in cand)
                if not (retry[0] < edge).any():
                    break
        if not out:
            e = np.empty(0, dtype=np.int64)
            return np.empty(0), e, np.empty(0), e
        t, k, _, orig, fl = (np.concatenate([o[i] for o in out]) for i in range(5))
        return t, k, orig, fl


def simulate_fast(
    scenario: Scenario, topology: str, seed: int, replication: int, provider: str | None = None
) -> Replication:
    """One replication with the vectorised engine; the same result schema as the SimPy engine."""
    top = scenario.topologies[topology]
    plan = fast_plan(scenario, top, provider)
    if isinstance(plan, str):
        raise ValueError(f"fast engine does not apply: {plan}")
    run = _FastRun(scenario, top, plan, Streams(seed, replication), provider)
    return run.run()


class _FastRun:
    def __init__(
        self, sc: Scenario, top: Topology, plan: FastPlan, streams: Streams, provider: str | None
    ) -> None:
        self.sc, self.top, self.plan = sc, top, plan
        svc = top.services[plan.station]
        self.service = streams.stream(f"service/{plan.station}", svc.service_time)
        self.sources = [
            (w.flow, ArrivalSource(w, streams.rng(f"arrivals/{w.flow}"))) for w in sc.workloads
        ]
        self.prof: BrokerProfile | None = None
        self.admission: _Admission | None = None
        self.pub: Stream | None = None
        self.dlv: Stream | None = None
        if plan.topic is not None:
            self.prof = _profile(sc, top, plan.topic, provider)
            self.admission = _Admission(self.prof, sc.warmup)
            self.pub = streams.stream(f"broker/{plan.topic}/publish", self.prof.publish_latency)
            self.dlv = streams.stream(f"broker/{plan.topic}/delivery", self.prof.delivery_latency)
        self.d_prev = np.full(plan.partitions, -math.inf)
        self.grid = np.arange(0.0, sc.duration, sc.sample_interval)
        self.started_at = np.zeros(len(self.grid), dtype=np.int64)
        self.finished = np.zeros(len(self.grid), dtype=np.int64)
        self.published_at = np.zeros(len(self.grid), dtype=np.int64)
        self.consumed_at = np.zeros(len(self.grid), dtype=np.int64)
        self.response = _Hist()
        self.completion = _Hist()
        self.flow_counts = {w.flow: [0, 0] for w in sc.workloads}  # answered, ok
        self.started = np.zeros(len(sc.workloads), dtype=np.int64)  # in the window, per flow
        self.area = self.busy = self.sojourn_sum = self.wait_sum = self.hold = 0.0
        self.hold_n = 0
        self.late_o: list[np.ndarray] = []  # arrival times of flows unfinished at the end
        self.late_f: list[np.ndarray] = []
        self.arrivals = self.sojourn_n = 0
        self.published = self.requests = self.delivered = 0
        self.pending: tuple[np.ndarray, ...] = (np.empty(0),) * 5

    def _bucket(self, counter: np.ndarray, times: np.ndarray) -> None:
        idx = np.searchsorted(self.grid, times, side="left")
        counter += np.bincount(idx, minlength=len(self.grid) + 1)[: len(self.grid)]

    def run(self) -> Replication:
        sc = self.sc
        flow_ids = {name: i for i, (name, _) in enumerate(self.sources)}
        for t0, t1 in windows(sc.duration, sc.chunk):
            parts = [(src.window(t0, t1), flow_ids[name]) for name, src in self.sources]
            times = np.concatenate([p[0][0] for p in parts])
            keys = np.concatenate([p[0][1] for p in parts])
            fid = np.concatenate([np.full(len(p[0][0]), p[1]) for p in parts])
            order = np.argsort(times, kind="stable")
            times, keys, fid = times[order], keys[order], fid[order]
            self._bucket(self.started_at, times)
            self.started += np.bincount(
                fid[times >= sc.warmup], minlength=len(self.sources)
            ).astype(np.int64)
            self._window(t0, t1, times, keys, fid)
        return self._result()

    def _window(
        self, t0: float, t1: float, times: np.ndarray, keys: np.ndarray, fid: np.ndarray
    ) -> None:
        if self.plan.topic is None:
            self._station(t1, times, keys, times, times, fid)
            return
        assert self.admission and self.pub and self.dlv and self.prof
        if self.prof.batch_size > 1 and self.prof.linger > 0:
            adm_k, orig, adm_f, pub_done, arrive = self._batched(times, keys, fid)
        else:
            adm_t, adm_k, orig, adm_f = self.admission.window(t0, t1, times, keys, fid)
            n = len(adm_t)
            self.requests += int((orig >= self.sc.warmup).sum())
            pub_done = adm_t + self.pub.take(n)
            arrive = pub_done + self.dlv.take(n)
        ok_resp = pub_done < self.sc.duration
        self.published += int((ok_resp & (orig >= self.sc.warmup)).sum())
        self._bucket(self.published_at, pub_done[ok_resp])
        counted = ok_resp & (orig >= self.sc.warmup)
        self.response.add(pub_done[counted] - orig[counted])
        for i, name in enumerate(self.flow_counts):
            c = self.flow_counts[name]
            m = counted & (adm_f == i)
            c[0] += int(m.sum())
            c[1] += int(m.sum())
        self._station(t1, arrive, adm_k, orig, pub_done, adm_f)

    def _batched(
        self, times: np.ndarray, keys: np.ndarray, fid: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Client batching: a batch closes at the end of its linger slot or when full (no quota).

        One publish latency per batch, drawn in flush order; one delivery latency
        per event, drawn in the order the publishers resume (batch completion,
        then join order): the SimPy engine's order.
        """
        assert self.prof and self.pub and self.dlv
        size, linger = self.prof.batch_size, self.prof.linger
        n = len(times)
        if n == 0:
            e = np.empty(0)
            return np.empty(0, dtype=np.int64), e, np.empty(0, dtype=np.int64), e, e
        slot = np.floor(times / linger).astype(np.int64)
        idx = np.arange(n)
        first = np.r_[0, np.flatnonzero(np.diff(slot)) + 1]
        rank = idx - first[np.searchsorted(first, idx, side="right") - 1]
        group = slot * (n + 1) + rank // size
        bstart = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        bsize = np.diff(np.r_[bstart, n])
        blast = bstart + bsize - 1
        flush = np.where(bsize >= size, times[blast], (slot[bstart] + 1) * linger)
        order = np.argsort(flush, kind="stable")
        latency = np.empty(len(flush))
        latency[order] = self.pub.take(len(flush))
        self.requests += int(((flush >= self.sc.warmup) & (flush < self.sc.duration)).sum())
        member_batch = np.repeat(np.arange(len(bstart)), bsize)
        pub_done = (flush + latency)[member_batch]
        resume = np.argsort(pub_done, kind="stable")
        dlv = np.empty(n)
        dlv[resume] = self.dlv.take(n)
        return keys, times, fid, pub_done, pub_done + dlv

    def _station(
        self,
        t1: float,
        arrive: np.ndarray,
        keys: np.ndarray,
        orig: np.ndarray,
        resp_at: np.ndarray,
        fid: np.ndarray,
    ) -> None:
        """Serve, in station-arrival order, everything that reaches the station before t1."""
        pa, pk, po, pr, pf = self.pending
        arrive = np.concatenate([pa, arrive])
        keys = np.concatenate([pk, keys]).astype(np.int64)
        orig = np.concatenate([po, orig])
        resp_at = np.concatenate([pr, resp_at])
        fid = np.concatenate([pf, fid]).astype(np.int64)
        order = np.argsort(arrive, kind="stable")
        arrive, keys, orig, resp_at, fid = (
            arrive[order],
            keys[order],
            orig[order],
            resp_at[order],
            fid[order],
        )
        last = t1 >= self.sc.duration
        cut = len(arrive) if last else int(np.searchsorted(arrive, t1, "left"))
        self.pending = (arrive[cut:], keys[cut:], orig[cut:], resp_at[cut:], fid[cut:])
        a, k, o, r, f = arrive[:cut], keys[:cut], orig[:cut], resp_at[:cut], fid[:cut]
        if self.prof is not None and self.prof.delivery_quota is not None and len(a):
            a, k, o, r, f = self._delivery_quota(a, k, o, r, f)
        s = self.service.take(len(a))
        d = np.empty(len(a))
        lane = (
            k % self.plan.partitions
            if self.plan.partitions > 1
            else np.zeros(len(a), dtype=np.int64)
        )
        if self.plan.partitions > 1:
            by_lane = np.argsort(lane, kind="stable")
            bounds = np.searchsorted(lane[by_lane], np.arange(self.plan.partitions + 1))
            for p in range(self.plan.partitions):
                idx = by_lane[bounds[p] : bounds[p + 1]]
                if len(idx):
                    d[idx] = lindley_departures(a[idx], s[idx], self.d_prev[p])
                    self.d_prev[p] = d[idx[-1]]
        elif len(a):
            d[:] = lindley_departures(a, s, self.d_prev[0])
            self.d_prev[0] = d[-1]
        self._account(a, s, d, o, r, f)

    def _delivery_quota(self, a: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, ...]:
        """Throttled deliveries wait for the next one-second window (delayed, not dropped).

        An item pushed past the window's end is still served in this window
        (a boundary approximation; windows are whole seconds).
        """
        assert self.prof is not None and self.prof.delivery_quota is not None
        q = int(self.prof.delivery_quota)
        a = a.copy()
        second = math.floor(a[0])
        while True:
            lo = int(np.searchsorted(a, second, "left"))
            hi = int(np.searchsorted(a, second + 1, "left"))
            if hi - lo > q:
                a[lo + q : hi] = second + 1
            if hi >= len(a):
                break
            second = max(second + 1, math.floor(a[hi]))
        return (a, *rest)

    def _account(
        self,
        a: np.ndarray,
        s: np.ndarray,
        d: np.ndarray,
        o: np.ndarray,
        r: np.ndarray,
        f: np.ndarray,
    ) -> None:
        sc = self.sc
        warm, end = sc.warmup, sc.duration
        late = d >= end
        self.late_o.append(o[late])
        self.late_f.append(f[late])
        inside = a < end
        a, s, d, o, r, f = a[inside], s[inside], d[inside], o[inside], r[inside], f[inside]
        self.area += float(np.clip(np.minimum(d, end) - np.maximum(a, warm), 0, None).sum())
        m = a >= warm
        self.arrivals += int(m.sum())
        self.delivered += int((o >= warm).sum())
        done = m & (d < end)
        start = d - s
        self.busy += float(np.clip(np.minimum(d, end) - np.maximum(start, warm), 0, None).sum())
        served = d < end  # finished visits, as the SimPy engine counts them
        self.hold += float(s[served].sum())
        self.hold_n += int(served.sum())
        self.sojourn_sum += float((d - a)[done].sum())
        self.wait_sum += float((start - a)[done].sum())
        self.sojourn_n += int(done.sum())
        finished = d < end
        self._bucket(self.finished, d[finished])
        self._bucket(self.consumed_at, d[finished])
        counted = finished & (o >= warm)
        self.completion.add(d[counted] - o[counted])
        if self.plan.topic is None:
            self.response.add(d[counted] - o[counted])
            for i, name in enumerate(self.flow_counts):
                c = self.flow_counts[name]
                n = int((counted & (f == i)).sum())
                c[0] += n
                c[1] += n

    def _result(self) -> Replication:
        sc = self.sc
        span = sc.duration - sc.warmup
        adm = self.admission

        def cat(parts: list[np.ndarray] | None) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0)

        failed_t0 = cat(adm.failed_t0 if adm else None)
        failed_at = cat(adm.failed_at if adm else None)
        failed_f = cat(adm.failed_f if adm else None)
        failed_mask = (failed_t0 >= sc.warmup) & (failed_at < sc.duration)
        self._bucket(self.finished, failed_at[failed_at < sc.duration])
        # unfinished at the end: not yet departed, still retrying a throttled publish, or giving up after the end
        still = failed_at >= sc.duration
        late_o = np.concatenate(
            [cat(self.late_o), adm.pool[3] if adm else np.empty(0), failed_t0[still]]
        )
        late_f = np.concatenate(
            [cat(self.late_f), adm.pool[4] if adm else np.empty(0), failed_f[still]]
        ).astype(np.int64)
        flows = {}
        for i, (name, (_, ok)) in enumerate(self.flow_counts.items()):
            fails = int((failed_mask & (failed_f == i)).sum())
            n = int(self.started[i])
            mine = late_o[late_f == i]
            unfinished = int((mine >= sc.warmup).sum())
            flows[name] = FlowResult(
                count=n,
                throughput=ok / span,
                success_rate=ok / n if n else math.nan,
                error_rate=fails / n if n else math.nan,
                timeout_rate=0.0 if n else math.nan,
                not_completed_rate=unfinished / n if n else math.nan,
                in_progress=len(mine),
                oldest_in_progress=float(sc.duration - mine.min()) if len(mine) else 0.0,
                latency=self.response.quantiles(),
                completion=self.completion.quantiles(),
            )
        services = {
            self.plan.station: station_result(
                busy=self.busy,
                area=self.area,
                arrivals=self.arrivals,
                sojourn_sum=self.sojourn_sum,
                sojourn_n=self.sojourn_n,
                wait_sum=self.wait_sum,
                hold=self.hold,
                hold_n=self.hold_n,
                capacity=self.plan.partitions,
                span=span,
            )
        }
        inflight = np.cumsum(self.started_at) - np.cumsum(self.finished)
        topics: dict[str, TopicResult[float]] = {}
        backlog_topics: dict[str, list[int]] = {}
        if self.plan.topic is not None and adm is not None:
            throttled = adm.throttled
            topics[self.plan.topic] = TopicResult(
                published=self.published,
                publish_requests=self.requests,
                throttled=throttled,
                throttle_rate=throttled / max(1, self.requests + throttled),
                publish_failed=int(failed_mask.sum()),
                deliveries=self.delivered,
                dead_lettered=0,
                events_per_s=self.published / span,
                deliveries_per_s=self.delivered / span,
                requests_per_s=self.requests / span,
            )
            backlog_topics[self.plan.topic] = (
                np.cumsum(self.published_at) - np.cumsum(self.consumed_at)
            ).tolist()
        return Measures(
            flows=flows,
            services=services,
            topics=topics,
            read_models={},
            backlog=backlog_result(
                self.grid.tolist(), inflight.tolist(), backlog_topics, sc.warmup
            ),
            faults=(),
        )
