"""Per-subscription runtime figures and their Prometheus text exposition."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent

from polybus.core.bus import Subscription
from polybus.core.contract import BacklogStats

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
    latency_seconds: Histogram = field(default_factory=Histogram)

    def observe_latency(self, event: CloudEvent, now: float | None = None) -> None:
        """Count the end-to-end latency of a handled event: its `time` to `now` (wall clock).

        An event without `time` is not counted; clock skew between producer and
        consumer can make a latency negative, which counts as 0.
        """
        sent = event.get_time()
        if isinstance(sent, datetime):
            moment = time.time() if now is None else now
            self.latency_seconds.observe(max(0.0, moment - sent.timestamp()))


def prometheus_text(
    subscriptions: Iterable[tuple[Subscription, RuntimeStats]],
    app: str,
    backlog: Sequence[BacklogStats] = (),
    alarms: Sequence[tuple[str, str]] = (),
) -> str:
    """The Prometheus text format (0.0.4) for every subscription's counters and gauges.

    `backlog` is the lag gauge (the latest BacklogStats the runtime read, one
    per subscription whose adapter reports it); `alarms` the firing (rule,
    subscription) pairs.
    """
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
    out += _histogram(
        rows, app, "polybus_handler_duration_seconds", "handler run time", "handler_seconds"
    )
    out += _histogram(
        rows,
        app,
        "polybus_end_to_end_latency_seconds",
        "event time to handled (producer and consumer clocks)",
        "latency_seconds",
    )
    gauges = (
        ("undelivered", "polybus_backlog_undelivered", "events waiting for delivery"),
        ("in_flight", "polybus_backlog_in_flight", "events leased and not settled (provider view)"),
        ("oldest_age", "polybus_backlog_oldest_age_seconds", "age of the oldest unacked event"),
        ("dead_letters", "polybus_backlog_dead_letters", "events in the dead-letter target"),
    )
    for attr, metric, help_text in gauges:
        values = [(b.subscription, getattr(b, attr)) for b in backlog]
        values = [(name, value) for name, value in values if value is not None]
        if values:
            out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
            out += [
                f'{metric}{{app="{app}",subscription="{name}"}} {value:g}' for name, value in values
            ]
    if alarms:
        metric = "polybus_alarm_firing"
        out += [f"# HELP {metric} 1 while the alarm rule fires", f"# TYPE {metric} gauge"]
        out += [
            f'{metric}{{app="{app}",alarm="{rule}",subscription="{name}"}} 1'
            for rule, name in alarms
        ]
    return "\n".join(out) + "\n"


def _histogram(
    rows: list[tuple[Subscription, RuntimeStats]], app: str, metric: str, help_text: str, attr: str
) -> list[str]:
    out = [f"# HELP {metric} {help_text}", f"# TYPE {metric} histogram"]
    for sub, runtime in rows:
        labels = f'app="{app}",subscription="{sub.name}"'
        hist: Histogram = getattr(runtime, attr)
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{metric}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{metric}_sum{{{labels}}} {hist.total:.6f}")
        out.append(f"{metric}_count{{{labels}}} {hist.count}")
    return out
