"""What one replication measured, and the aggregate over replications.

Both engines fill a `Recorder`; `Recorder.result()` turns it into a plain
JSON-able dict for one replication, and `aggregate()` folds the replications
into means with 95% confidence intervals (the documented JSON schema, see
docs/sim.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polybus.sim.stats import summarize
from polybus.sim.topology import Fault

OK, ERROR, TIMEOUT = 0, 1, 2
QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
CDF_PERCENTS = [1.0, *range(5, 100, 5), 97.5, 99.0, 99.5, 99.9]


class StationStats:
    """Time-integrated occupancy and per-visit times of one service (Little's law inputs)."""

    __slots__ = ("area", "area0", "arrivals", "busy", "last", "n", "sojourn", "waits", "workers")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.n = 0
        self.area = 0.0
        self.area0 = 0.0
        self.last = 0.0
        self.arrivals = 0
        self.busy = 0.0
        self.sojourn: list[float] = []
        self.waits: list[float] = []


class FlowStats:
    """Arrival time, response latency, completion latency and outcome of every flow instance."""

    __slots__ = ("completion", "response", "status", "t0")

    def __init__(self) -> None:
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
        self.inflight = 0

    def sample(self, now: float) -> None:
        """Record backlog (flows in progress, per-topic undelivered events) at `now`."""
        self.sample_t.append(now)
        self.sample_inflight.append(self.inflight)
        for name, t in self.topics.items():
            self.sample_topics.setdefault(name, []).append(t.backlog)

    def result(self, faults: Sequence[Fault] = ()) -> dict[str, Any]:
        """One replication's metrics as a JSON-able dict."""
        span = self.end - self.warmup
        return {
            "flows": {name: _flow(f, self.warmup, span) for name, f in self.flows.items()},
            "services": {name: _station(s, span) for name, s in self.stations.items()},
            "topics": {name: _topic(t, span) for name, t in self.topics.items()},
            "read_models": {
                name: _window(w, self.lost.get(name, 0), self.grid)
                for name, w in self.windows.items()
            },
            "backlog": {
                "t": self.sample_t,
                "in_flight": self.sample_inflight,
                "topics": self.sample_topics,
            },
            "faults": [self._fault(f) for f in faults],
        }

    def _fault(self, fault: Fault) -> dict[str, Any]:
        t0 = np.concatenate([np.asarray(f.t0) for f in self.flows.values()] or [np.empty(0)])
        st = np.concatenate([np.asarray(f.status) for f in self.flows.values()] or [np.empty(0)])
        lat = np.concatenate([np.asarray(f.response) for f in self.flows.values()] or [np.empty(0)])

        def phase(lo: float, hi: float) -> dict[str, float]:
            m = (t0 >= lo) & (t0 < hi)
            ok = m & (st == OK)
            return {
                "success_rate": float(ok.sum() / m.sum()) if m.any() else math.nan,
                "latency_mean": float(lat[ok].mean()) if ok.any() else math.nan,
            }

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
        return {
            "service": fault.service,
            "kind": fault.kind,
            "start": fault.start,
            "end": fault.end,
            "before": phase(self.warmup, fault.start),
            "during": phase(fault.start, fault.end),
            "after": phase(fault.end, self.end),
            "peak_backlog": float(inflight[peak_mask].max()) if peak_mask.any() else 0.0,
            "drain_time": drain,
        }


def _quantiles(xs: np.ndarray) -> dict[str, Any]:
    xs = xs[~np.isnan(xs)]
    if len(xs) == 0:
        return {
            "mean": math.nan,
            **dict.fromkeys(QUANTILES, math.nan),
            "cdf": {"percent": CDF_PERCENTS, "x": [math.nan] * len(CDF_PERCENTS)},
        }
    qs = np.percentile(xs, list(QUANTILES.values()))
    cdf = np.percentile(xs, CDF_PERCENTS)
    return {
        "mean": float(xs.mean()),
        **{k: float(q) for k, q in zip(QUANTILES, qs, strict=True)},
        "cdf": {"percent": CDF_PERCENTS, "x": [float(x) for x in cdf]},
    }


def _flow(f: FlowStats, warmup: float, span: float) -> dict[str, Any]:
    t0 = np.asarray(f.t0)
    st = np.asarray(f.status, dtype=np.int64)
    m = t0 >= warmup
    n = int(m.sum())
    ok = m & (st == OK)
    return {
        "count": n,
        "throughput": float(ok.sum() / span),
        "success_rate": float(ok.sum() / n) if n else math.nan,
        "error_rate": float((m & (st == ERROR)).sum() / n) if n else math.nan,
        "timeout_rate": float((m & (st == TIMEOUT)).sum() / n) if n else math.nan,
        "latency": _quantiles(np.asarray(f.response)[ok]),
        "completion": _quantiles(np.asarray(f.completion)[ok]),
    }


def _station(s: StationStats, span: float) -> dict[str, float]:
    soj = np.asarray(s.sojourn)
    lam = s.arrivals / span
    w = float(soj.mean()) if len(soj) else math.nan
    occupancy = (s.area - s.area0) / span
    return {
        "utilisation": s.busy / (span * s.workers),
        "L": occupancy,
        "lambda": lam,
        "W": w,
        "Wq": float(np.mean(s.waits)) if s.waits else math.nan,
        "little_gap": abs(occupancy - lam * w) / occupancy if occupancy > 0 else 0.0,
    }


def _topic(t: TopicStats, span: float) -> dict[str, float]:
    return {
        "published": t.published,
        "publish_requests": t.requests,
        "throttled": t.throttled,
        "throttle_rate": t.throttled / max(1, t.requests + t.throttled),
        "publish_failed": t.publish_failed,
        "deliveries": t.deliveries,
        "dead_lettered": t.dead_lettered,
        "events_per_s": t.published / span,
        "deliveries_per_s": t.deliveries / span,
        "requests_per_s": t.requests / span,
    }


def _window(w: list[float], lost: int, grid: Sequence[float]) -> dict[str, Any]:
    xs = np.asarray(w)
    total = len(xs) + lost
    stale = [float(((xs > g).sum() + lost) / total) if total else math.nan for g in grid]
    return {"window": _quantiles(xs), "lost": lost, "stale_grid": list(grid), "p_stale": stale}


PASSTHROUGH = {"t", "stale_grid", "service", "kind", "start", "end", "percent"}


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold per-replication dicts: numbers become summaries (mean, sd, ci95, halfwidth, n)."""
    return _merge(list(results), "")


def _merge(items: list[Any], key: str) -> Any:
    first = items[0]
    if key in PASSTHROUGH:
        return first
    if isinstance(first, Mapping):
        keys = list(first)
        return {k: _merge([it[k] for it in items if k in it], k) for k in keys}
    if isinstance(first, list) and not first:
        return []
    if isinstance(first, list) and isinstance(first[0], Mapping):
        return [_merge([it[i] for it in items if i < len(it)], key) for i in range(len(first))]
    if isinstance(first, list):
        n = min(len(it) for it in items)
        cols = [summarize([it[i] for it in items]) for i in range(n)]
        return {"mean": [c["mean"] for c in cols], "halfwidth": [c["halfwidth"] for c in cols]}
    if isinstance(first, int | float):
        out = summarize([float(x) for x in items])
        out["values"] = [None if math.isnan(float(x)) else float(x) for x in items]
        return out
    return first
