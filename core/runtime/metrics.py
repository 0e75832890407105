"""Per-subscription runtime figures and their Prometheus text exposition."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from polybus.core.bus import Subscription

# Prometheus' default buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """A cumulative histogram of handler durations (seconds)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        """How many durations were observed."""
        return sum(self.counts)


@dataclass
class RuntimeStats:
    """What the runtime adds to a subscription's delivery counts."""

    in_flight: int = 0
    lease_renewals: int = 0
    handler_seconds: Histogram = field(default_factory=Histogram)


def prometheus_text(subscriptions: Iterable[tuple[Subscription, RuntimeStats]], app: str) -> str:
    """The Prometheus text format (0.0.4) for every subscription's counters and gauges."""
    rows = list(subscriptions)
    out: list[str] = []
    counters = (
        ("delivered", "deliveries handed to the subscription"),
        ("acked", "deliveries acked"),
        ("retried", "deliveries nacked for redelivery"),
        ("dead_lettered", "deliveries moved to the dead-letter target"),
        ("filtered", "deliveries dropped by the client-side filter"),
    )
    for name, help_text in counters:
        metric = f"polybus_{name}_total"
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        out += [
            f'{metric}{{app="{app}",subscription="{sub.name}"}} {getattr(sub.stats, name)}'
            for sub, _ in rows
        ]
    out += [
        "# HELP polybus_in_flight deliveries being handled now",
        "# TYPE polybus_in_flight gauge",
    ]
    out += [
        f'polybus_in_flight{{app="{app}",subscription="{s.name}"}} {r.in_flight}' for s, r in rows
    ]
    out += [
        "# HELP polybus_lease_renewals_total leases extended while a handler worked",
        "# TYPE polybus_lease_renewals_total counter",
    ]
    out += [
        f'polybus_lease_renewals_total{{app="{app}",subscription="{s.name}"}} {r.lease_renewals}'
        for s, r in rows
    ]
    metric = "polybus_handler_duration_seconds"
    out += [f"# HELP {metric} handler run time", f"# TYPE {metric} histogram"]
    for sub, runtime in rows:
        labels = f'app="{app}",subscription="{sub.name}"'
        hist = runtime.handler_seconds
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{metric}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{metric}_sum{{{labels}}} {hist.total:.6f}")
        out.append(f"{metric}_count{{{labels}}} {hist.count}")
    return "\n".join(out) + "\n"
