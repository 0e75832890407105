"""The live run's clock: seconds since the run's start, precise sleeps, and event timestamps.

Run time is the monotonic clock minus the start; an event's CloudEvent
``time`` (and the flow-start extension) is wall time, mapped to and from run
time through one anchor taken at the start. Sleeps subtract the event loop's
wake-up overshoot (the median of a short calibration, then moved 5 µs
after every sleep towards a median error of zero, since a loaded loop wakes
later than an idle one), so a drawn 2 ms service time holds the worker
about 2 ms, not 2.1.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime

STEP = 5e-6  # seconds the bias moves after each sleep, towards a median overshoot of 0
MAX_BIAS = 0.002
CALIBRATION_SLEEPS = 40
CALIBRATION_SLEEPS_S = (0.0003, 0.0007, 0.0011, 0.0019)  # off the millisecond grid on purpose


class RunClock:
    """Run time in seconds (0 at the start), and conversions to and from CloudEvent timestamps."""

    def __init__(self, lead: float = 0.0) -> None:
        self.mono0 = time.monotonic() + lead
        self.wall0 = time.time() + lead
        self.bias = 0.0

    def restart(self, lead: float = 0.0) -> None:
        """Put the run's start `lead` seconds from now."""
        self.mono0 = time.monotonic() + lead
        self.wall0 = time.time() + lead

    def wall_ns(self, t: float) -> int:
        """Run time `t` as wall-clock nanoseconds since the epoch (span timestamps)."""
        return int((self.wall0 + t) * 1e9)

    def now(self) -> float:
        """Seconds since the run's start (negative before it)."""
        return time.monotonic() - self.mono0

    def stamp(self, t: float) -> datetime:
        """Run time `t` as a timezone-aware wall-clock datetime (a CloudEvent time)."""
        return datetime.fromtimestamp(self.wall0 + t, UTC)

    def since_start(self, stamp: datetime) -> float:
        """The run time of a CloudEvent timestamp."""
        return stamp.timestamp() - self.wall0

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, less the loop's overshoot (learnt from every sleep)."""
        delay = seconds - self.bias
        if delay > 0:
            t = time.monotonic()
            await asyncio.sleep(delay)
            error = time.monotonic() - t - seconds
            step = STEP if error > 0 else -STEP  # follows the median overshoot, not the mean
            self.bias = min(MAX_BIAS, max(0.0, self.bias + step))

    async def sleep_until(self, t: float) -> None:
        """Sleep until run time `t` (returns at once when it has passed)."""
        await self.sleep(t - self.now())

    async def calibrate(self) -> float:
        """Measure the loop's median sleep overshoot and subtract it from later sleeps; returns it."""
        over = []
        for i in range(CALIBRATION_SLEEPS):
            want = CALIBRATION_SLEEPS_S[i % len(CALIBRATION_SLEEPS_S)]
            t = time.monotonic()
            await asyncio.sleep(want)
            over.append(time.monotonic() - t - want)
        self.bias = max(0.0, statistics.median(over))
        return self.bias
