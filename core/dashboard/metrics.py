"""Read `polybus run --health-port` metrics: parse the Prometheus text, derive rates and quantiles.

Counters (`polybus_<name>_total`) and the `polybus_handler_duration_seconds`
histogram are sampled on every poll; rates and p50/p99 come from the change
across a sliding window of samples, so they describe the last `WINDOW` seconds,
not the process's whole life.
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW = 30.0  # seconds of samples rates and quantiles are computed over
COUNTERS = ("delivered", "acked", "retried", "dead_lettered", "filtered")
HISTOGRAM = "polybus_handler_duration_seconds"
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One subscription's cumulative figures at one instant (monotonic seconds)."""

    at: float
    counters: dict[str, float]
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last


@dataclass(frozen=True)
class Rates:
    """A subscription's figures over the window; None where there is nothing to say yet."""

    subscription: str
    throughput: float | None  # acked per second
    delivered_rate: float | None
    retry_rate: float | None  # retried per second
    error_rate: float | None  # (retried + dead-lettered) / delivered, 0..1
    dead_letter_rate: float | None
    p50: float | None  # seconds
    p99: float | None
    totals: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """As plain JSON."""
        return {
            "subscription": self.subscription,
            "throughput": self.throughput,
            "delivered_rate": self.delivered_rate,
            "retry_rate": self.retry_rate,
            "error_rate": self.error_rate,
            "dead_letter_rate": self.dead_letter_rate,
            "p50": self.p50,
            "p99": self.p99,
            "totals": self.totals,
        }


def parse(text: str) -> dict[str, tuple[dict[str, float], list[tuple[float, float]]]]:
    """Counters and histogram buckets per subscription from Prometheus text (apps summed)."""
    out: dict[str, tuple[dict[str, float], dict[float, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, raw_labels, raw_value = match.groups()
        labels = dict(_LABEL.findall(raw_labels or ""))
        sub = labels.get("subscription")
        if sub is None:
            continue
        try:
            value = float(raw_value)
        except ValueError:
            continue
        counters, buckets = out.setdefault(sub, ({}, {}))
        if name.startswith("polybus_") and name.endswith("_total"):
            key = name[len("polybus_") : -len("_total")]
            counters[key] = counters.get(key, 0.0) + value
        elif name == f"{HISTOGRAM}_bucket" and "le" in labels:
            bound = math.inf if labels["le"] == "+Inf" else float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    return {sub: (c, sorted(b.items())) for sub, (c, b) in out.items()}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative buckets, interpolated as Prometheus' histogram_quantile."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # above the highest finite bucket: its bound is all we know
            width = count - lower_count
            if width <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / width
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class MetricsSource:
    """One `/metrics` endpoint, polled; keeps a window of samples per subscription."""

    url: str
    clock: Callable[[], float] = time.monotonic
    error: str | None = None
    history: dict[str, deque[Sample]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.url.rstrip("/").endswith("/metrics"):
            self.url = self.url.rstrip("/") + "/metrics"

    def poll(self, timeout: float = 0.5) -> None:
        """Fetch the endpoint once and record a sample per subscription (or the error)."""
        try:
            with urllib.request.urlopen(self.url, timeout=timeout) as response:
                text = response.read().decode("utf-8", "replace")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.error = None
        self.record(text)

    def record(self, text: str) -> None:
        """Add one sample per subscription from Prometheus text."""
        now = self.clock()
        for sub, (counters, buckets) in parse(text).items():
            window = self.history.setdefault(sub, deque())
            window.append(Sample(now, counters, tuple(buckets)))
            while len(window) > 2 and now - window[1].at >= WINDOW:
                window.popleft()

    def rates(self) -> list[Rates]:
        """Each subscription's rates and quantiles over the window."""
        return [_rates(sub, list(window)) for sub, window in sorted(self.history.items())]


def _rates(sub: str, window: list[Sample]) -> Rates:
    last = window[-1]
    first = window[0]
    elapsed = last.at - first.at

    def delta(name: str) -> float:
        return last.counters.get(name, 0.0) - first.counters.get(name, 0.0)

    def per_second(name: str) -> float | None:
        return delta(name) / elapsed if elapsed > 0 else None

    delivered = delta("delivered")
    errors = delta("retried") + delta("dead_lettered")
    error_rate = errors / delivered if delivered > 0 else (0.0 if elapsed > 0 else None)
    moved = [
        (bound, count - before)
        for (bound, count), (_, before) in zip(last.buckets, first.buckets, strict=False)
    ]
    if len(window) < 2 or not moved or moved[-1][1] <= 0:
        moved = list(last.buckets)  # nothing handled in the window: the whole life
    return Rates(
        subscription=sub,
        throughput=per_second("acked"),
        delivered_rate=per_second("delivered"),
        retry_rate=per_second("retried"),
        error_rate=min(1.0, error_rate) if error_rate is not None else None,
        dead_letter_rate=per_second("dead_lettered"),
        p50=quantile(0.5, moved),
        p99=quantile(0.99, moved),
        totals=dict(last.counters),
    )
