"""What one replication measured, and the aggregate over replications.

The SimPy engine fills a `Recorder`; `Recorder.result()` turns it into one
replication's typed `Measures` (the fast path builds the same with the
helpers here), and `aggregate()` folds the replications into summaries with
95% confidence intervals (the documented JSON schema, see docs/sim.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from polybus.sim.host import SharedCpu
from polybus.sim.results import (
    Aggregate,
    BacklogResult,
    Cdf,
    FaultResult,
    FlowResult,
    HostResult,
    Measures,
    Phase,
    Quantiles,
    ReadModelResult,
    Replication,
    StationResult,
    TopicResult,
    fold,
)
from polybus.sim.topology import Fault

OK, ERROR, TIMEOUT = 0, 1, 2
QUANTILES = (50.0, 95.0, 99.0, 99.9)  # p50, p95, p99, p999
CDF_PERCENTS = (1.0, *(float(p) for p in range(5, 100, 5)), 97.5, 99.0, 99.5, 99.9)


class StationStats:
    """Time-integrated occupancy and busy workers of one service, and per-visit times (Little's law inputs).

    `area` and `busy_area` integrate the number of visits in the station and
    the number of busy workers over time, so utilisation counts every moment
    of work inside the measurement window, including visits that straddle the
    warm-up or the end. `hold` sums how long finished visits held a worker
    (their offered work, for the offered load).
    """

    __slots__ = (
        "area", "area0", "arrivals", "busy_area", "busy_area0", "busy_n", "hold", "hold_n",
        "last", "n", "sojourn", "waits", "workers",
    )  # fmt: skip

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.n = 0
        self.busy_n = 0
        self.area = 0.0
        self.area0 = 0.0
        self.busy_area = 0.0
        self.busy_area0 = 0.0
        self.last = 0.0
        self.arrivals = 0
        self.hold = 0.0
        self.hold_n = 0
        self.sojourn: list[float] = []
        self.waits: list[float] = []

    def tick(self, now: float) -> None:
        """Integrate occupancy and busy workers up to `now`."""
        dt = now - self.last
        self.area += self.n * dt
        self.busy_area += self.busy_n * dt
        self.last = now


class FlowStats:
    """Arrival time, response latency, completion latency and outcome of every answered flow instance."""

    __slots__ = ("completion", "name", "response", "status", "t0")

    def __init__(self, name: str) -> None:
        self.name = name
        self.t0: list[float] = []
        self.response: list[float] = []
        self.completion: list[float] = []
        self.status: list[int] = []


class TopicStats:
    """Counters of one broker topic."""

    __slots__ = (
        "backlog",
        "dead_lettered",
        "deliveries",
        "publish_failed",
        "published",
        "requests",
        "throttled",
    )

    def __init__(self) -> None:
        self.published = 0
        self.requests = 0
        self.throttled = 0
        self.publish_failed = 0
        self.deliveries = 0
        self.dead_lettered = 0
        self.backlog = 0


class Live(Protocol):
    """A flow instance still in progress: which flow, when it started, whether it has answered."""

    @property
    def flow(self) -> FlowStats: ...

    @property
    def t0(self) -> float: ...

    @property
    def row(self) -> int: ...


class Recorder:
    """Everything measured in one replication of one topology."""

    def __init__(self, warmup: float, end: float, grid: Sequence[float]) -> None:
        self.warmup = warmup
        self.end = end
        self.grid = tuple(grid)
        self.flows: dict[str, FlowStats] = {}
        self.stations: dict[str, StationStats] = {}
        self.topics: dict[str, TopicStats] = {}
        self.windows: dict[str, list[float]] = {}
        self.lost: dict[str, int] = {}
        self.sample_t: list[float] = []
        self.sample_inflight: list[int] = []
        self.sample_topics: dict[str, list[int]] = {}
        self.live: set[Live] = set()
        self.hosts: Mapping[str, SharedCpu] = {}

    def sample(self, now: float) -> None:
        """Record backlog (flows in progress, per-topic undelivered events) at `now`."""
        self.sample_t.append(now)
        self.sample_inflight.append(len(self.live))
        for name, t in self.topics.items():
            self.sample_topics.setdefault(name, []).append(t.backlog)

    def result(self, faults: Sequence[Fault] = ()) -> Replication:
        """One replication's measures."""
        span = self.end - self.warmup
        flows = {}
        for name, f in self.flows.items():
            live = [c for c in self.live if c.flow is f]
            flows[name] = flow_result(
                f, self.warmup, span,
                unanswered=sum(c.row < 0 and c.t0 >= self.warmup for c in live),
                unfinished=sum(c.t0 >= self.warmup for c in live),
                in_progress=len(live),
                oldest=self.end - min(c.t0 for c in live) if live else 0.0,
            )  # fmt: skip
        return Measures(
            flows=flows,
            services={name: _station(s, span) for name, s in self.stations.items()},
            topics={name: topic_result(t, span) for name, t in self.topics.items()},
            read_models={
                name: _window(w, self.lost.get(name, 0), self.grid)
                for name, w in self.windows.items()
            },
            backlog=backlog_result(
                self.sample_t, self.sample_inflight, self.sample_topics, self.warmup
            ),
            faults=tuple(self._fault(f) for f in faults),
            hosts={name: host_result(h, span) for name, h in self.hosts.items()},
        )

    def _fault(self, fault: Fault) -> FaultResult[float]:
        t0 = np.concatenate([np.asarray(f.t0) for f in self.flows.values()] or [np.empty(0)])
        st = np.concatenate([np.asarray(f.status) for f in self.flows.values()] or [np.empty(0)])
        lat = np.concatenate([np.asarray(f.response) for f in self.flows.values()] or [np.empty(0)])

        def phase(lo: float, hi: float) -> Phase[float]:
            m = (t0 >= lo) & (t0 < hi)
            ok = m & (st == OK)
            return Phase(
                success_rate=float(ok.sum() / m.sum()) if m.any() else math.nan,
                latency_mean=float(lat[ok].mean()) if ok.any() else math.nan,
            )

        ts = np.asarray(self.sample_t)
        inflight = np.asarray(self.sample_inflight)
        before = (ts >= self.warmup) & (ts < fault.start)
        base = float(inflight[before].mean()) if before.any() else 0.0
        threshold = max(1.0, 2.0 * base)
        after = np.nonzero((ts >= fault.end) & (inflight <= threshold))[0]
        drain = float(ts[after[0]] - fault.end) if len(after) else math.nan
        peak_mask = (ts >= fault.start) & (
            ts < fault.end + (drain if not math.isnan(drain) else 0) + 1
        )
        return FaultResult(
            service=fault.service,
            kind=fault.kind,
            start=fault.start,
            end=fault.end,
            before=phase(self.warmup, fault.start),
            during=phase(fault.start, fault.end),
            after=phase(fault.end, self.end),
            peak_backlog=float(inflight[peak_mask].max()) if peak_mask.any() else 0.0,
            drain_time=drain,
        )


def empty_quantiles() -> Quantiles[float, tuple[float, ...]]:
    """Quantiles of no samples (all undefined)."""
    nan = math.nan
    return Quantiles(nan, nan, nan, nan, nan, Cdf(CDF_PERCENTS, (nan,) * len(CDF_PERCENTS)))


def quantiles(xs: np.ndarray) -> Quantiles[float, tuple[float, ...]]:
    """Mean, p50/p95/p99/p99.9 and the CDF points of the non-NaN samples."""
    xs = xs[~np.isnan(xs)]
    if len(xs) == 0:
        return empty_quantiles()
    qs = np.percentile(xs, QUANTILES)
    cdf = np.percentile(xs, CDF_PERCENTS)
    p50, p95, p99, p999 = (float(q) for q in qs)
    return Quantiles(
        float(xs.mean()), p50, p95, p99, p999, Cdf(CDF_PERCENTS, tuple(float(x) for x in cdf))
    )


def flow_result(
    f: FlowStats, warmup: float, span: float, *, unanswered: int, unfinished: int,
    in_progress: int, oldest: float,
) -> FlowResult[float, tuple[float, ...]]:  # fmt: skip
    """A flow's outcomes: rates over every flow started in the window, answered or not."""
    t0 = np.asarray(f.t0)
    st = np.asarray(f.status, dtype=np.int64)
    m = t0 >= warmup
    n = int(m.sum()) + unanswered
    ok = m & (st == OK)

    def rate(count: int) -> float:
        return count / n if n else math.nan

    return FlowResult(
        count=n,
        throughput=float(ok.sum() / span),
        success_rate=rate(int(ok.sum())),
        error_rate=rate(int((m & (st == ERROR)).sum())),
        timeout_rate=rate(int((m & (st == TIMEOUT)).sum())),
        not_completed_rate=rate(unfinished),
        in_progress=in_progress,
        oldest_in_progress=oldest,
        latency=quantiles(np.asarray(f.response)[ok]),
        completion=quantiles(np.asarray(f.completion)[ok]),
    )


def station_result(
    *, busy: float, area: float, arrivals: int, sojourn_sum: float, sojourn_n: int,
    wait_sum: float, hold: float, hold_n: int, capacity: int, span: float,
) -> StationResult[float]:  # fmt: skip
    """Utilisation, L, lambda, W, Wq, Little's gap and offered load (erlangs) of one station."""
    lam = arrivals / span
    w = sojourn_sum / sojourn_n if sojourn_n else math.nan
    occupancy = area / span
    return StationResult(
        utilisation=busy / (span * capacity),
        L=occupancy,
        lambda_=lam,
        W=w,
        Wq=wait_sum / sojourn_n if sojourn_n else math.nan,
        little_gap=abs(occupancy - lam * w) / occupancy if occupancy > 0 else 0.0,
        offered=lam * hold / hold_n if hold_n else 0.0,
        capacity=float(capacity),
    )


def _station(s: StationStats, span: float) -> StationResult[float]:
    return station_result(
        busy=s.busy_area - s.busy_area0, area=s.area - s.area0, arrivals=s.arrivals,
        sojourn_sum=float(np.sum(s.sojourn)), sojourn_n=len(s.sojourn),
        wait_sum=float(np.sum(s.waits)), hold=s.hold, hold_n=s.hold_n, capacity=s.workers,
        span=span,
    )  # fmt: skip


def host_result(h: SharedCpu, span: float) -> HostResult[float]:
    """A host's CPU utilisation, mean work in progress and offered CPUs over the measured window."""
    return HostResult(
        utilisation=(h.busy_area - h.busy0) / (span * h.cpus),
        in_progress=(h.area - h.area0) / span,
        offered=h.offered / span,
        cpus=float(h.cpus),
    )


def topic_result(t: TopicStats, span: float) -> TopicResult[float]:
    """A topic's counters and per-second rates."""
    return TopicResult(
        published=t.published,
        publish_requests=t.requests,
        throttled=t.throttled,
        throttle_rate=t.throttled / max(1, t.requests + t.throttled),
        publish_failed=t.publish_failed,
        deliveries=t.deliveries,
        dead_lettered=t.dead_lettered,
        events_per_s=t.published / span,
        deliveries_per_s=t.deliveries / span,
        requests_per_s=t.requests / span,
    )


def _window(
    w: list[float], lost: int, grid: Sequence[float]
) -> ReadModelResult[float, tuple[float, ...]]:
    xs = np.asarray(w)
    total = len(xs) + lost
    stale = tuple(float(((xs > g).sum() + lost) / total) if total else math.nan for g in grid)
    return ReadModelResult(quantiles(xs), lost, tuple(grid), stale)


def growing(t: Sequence[float], inflight: Sequence[float], warmup: float) -> bool:
    """Whether flows in progress grew through the second half of the window (an unbounded backlog).

    Least-squares slope over the second half: the growth it implies across that
    half must exceed both 10 flows and half the half's mean level. A backlog
    that builds up during a fault and drains before the end does not count.
    """
    ts = np.asarray(t, dtype=float)
    ys = np.asarray(inflight, dtype=float)
    if len(ts) < 4:
        return False
    mid = warmup + (ts[-1] - warmup) / 2
    m = ts >= mid
    if m.sum() < 3:
        return False
    x, y = ts[m], ys[m]
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    rise = slope * float(np.ptp(x))
    return rise > max(10.0, 0.5 * float(y.mean()))


def backlog_result(
    t: Sequence[float], inflight: Sequence[float], topics: Mapping[str, Sequence[float]],
    warmup: float,
) -> BacklogResult[float, tuple[float, ...]]:  # fmt: skip
    """The sampled backlog series and whether the flows in progress kept growing."""
    return BacklogResult(
        t=tuple(float(x) for x in t),
        in_flight=tuple(float(x) for x in inflight),
        topics={k: tuple(float(x) for x in v) for k, v in topics.items()},
        growing=1.0 if growing(t, inflight, warmup) else 0.0,
    )


def aggregate(results: Sequence[Replication]) -> Aggregate:
    """Fold replications: numbers become summaries (mean, sd, ci95, halfwidth, n, values)."""
    out = fold(results)
    assert isinstance(out, Measures)
    return out
