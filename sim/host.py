"""A host's CPUs shared by everything running on it: processor sharing (PS).

Services in one process contend for one interpreter: with n pieces of work
in progress on a host of c CPUs, each advances at min(1, c / n) seconds of
work per second. A topology's ``hosts`` declares them and a service's
``host`` places it; its service times, settle times and the broker latencies
of its publishes and deliveries are then work on that host, not delays.

Checked against the M/G/1-PS closed form (mean response E[S] / (1 - rho),
whatever the service-time distribution) in tests/sim/test_host.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import simpy

#: Work below this many seconds counts as done (float rounding of the shares).
EPSILON = 1e-12


class SharedCpu:
    """`cpus` processors shared equally among the work in progress (egalitarian PS)."""

    __slots__ = (
        "_gen", "_jobs", "_last", "area", "area0", "busy0", "busy_area", "cpus", "env", "offered",
        "warmup",
    )  # fmt: skip

    def __init__(self, env: simpy.Environment, cpus: int, warmup: float = 0.0) -> None:
        self.env = env
        self.cpus = cpus
        self.warmup = warmup
        self._jobs: dict[simpy.Event, float] = {}  # done event -> work left, s
        self._last = 0.0
        self._gen = 0  # the completion timer of an older state is ignored
        self.busy_area = 0.0  # CPU-seconds served (utilisation = busy_area / (cpus * time))
        self.area = 0.0  # integral of the pieces of work in progress
        self.busy0 = self.area0 = 0.0  # both at the end of the warm-up (`mark`)
        self.offered = 0.0  # CPU-seconds of work submitted after the warm-up

    def offer(self, seconds: float) -> None:
        """Count `seconds` of work asked of the host now (after the warm-up), served or not yet."""
        if self.env.now >= self.warmup:
            self.offered += seconds

    def work(self, seconds: float, offered: bool = False) -> simpy.Event:
        """An event that fires when `seconds` of CPU work have been served.

        `offered`: already counted by `offer` (a visit's work, counted when the
        visit arrives, so a queue in front of the host does not hide it).
        """
        done = self.env.event()
        if seconds <= 0:
            done.succeed()
            return done
        if not offered:
            self.offer(seconds)
        self._advance()
        self._jobs[done] = seconds
        self._schedule()
        return done

    def mark(self) -> None:
        """Start the measured window now (the end of the warm-up)."""
        self.sync()
        self.busy0, self.area0 = self.busy_area, self.area

    def sync(self) -> None:
        """Bring the served and in-progress integrals up to now."""
        self._advance()

    def _rate(self) -> float:
        n = len(self._jobs)
        return 1.0 if n <= self.cpus else self.cpus / n

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last
        self._last = now
        if dt <= 0 or not self._jobs:
            return
        served = dt * self._rate()
        self.busy_area += served * len(self._jobs)
        self.area += dt * len(self._jobs)
        for job in self._jobs:
            self._jobs[job] -= served

    def _schedule(self) -> None:
        self._gen += 1
        if not self._jobs:
            return
        least = min(self._jobs.values())
        delay = max(0.0, least / self._rate())
        gen = self._gen
        self.env.timeout(delay).callbacks.append(lambda _: self._finish(gen))

    def _finish(self, gen: int) -> None:
        if gen != self._gen:
            return
        self._advance()
        for job in [j for j, left in self._jobs.items() if left <= EPSILON]:
            del self._jobs[job]
            job.succeed()
        self._schedule()


def demands(intervals: list[tuple[int, int]]) -> Iterator[float]:
    """The CPU work (s) each interval (start_ns, end_ns) was served, were they all PS on one CPU.

    Under PS on one CPU a piece of work in progress with n - 1 others gets
    1/n of it, so an interval's work is the integral of 1/n(t) over it:
    the inverse of what a shared host does to a duration.
    """
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    integral: dict[int, float] = {}  # edge time -> integral of 1/n from the first edge, s
    level, acc, last = 0, 0.0, None
    for t, step in edges:
        if last is not None and level > 0:
            acc += (t - last) / 1e9 / level
        level += step
        last = t
        integral[t] = acc
    for s, e in intervals:
        yield max(0.0, integral[e] - integral[s])
