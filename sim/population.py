"""Arrivals of a workload as NumPy arrays, one time window at a time.

A device population is never one process per device: a Poisson population is
one superposed Poisson stream (exact) whose arrivals carry a uniformly drawn
device id; periodic and burst populations keep per-device phases in an array
and emit a sorted array per period. Both engines consume the same windows, so
they see the same arrivals.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from polybus.sim.topology import Workload


class ArrivalSource:
    """Sorted (times, keys) arrays of one workload for consecutive windows [t0, t1)."""

    def __init__(self, workload: Workload, rng: np.random.Generator) -> None:
        self.w = workload
        self.rng = rng
        self._pending_t = np.empty(0)
        self._pending_k = np.empty(0, dtype=np.int64)
        self._next_period = 0
        self._phases: np.ndarray | None = None
        if workload.pattern in ("periodic", "burst"):
            width = workload.period if workload.pattern == "periodic" else workload.spread
            self._phases = rng.uniform(0.0, width, workload.devices)

    def window(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times in [t0, t1) (ascending) and the device or request key of each."""
        if self.w.pattern == "poisson":
            return self._poisson(t0, t1, self.w.rate)
        if self.w.pattern == "diurnal":
            return self._diurnal(t0, t1)
        return self._periodic(t0, t1)

    def _keys(self, n: int) -> np.ndarray:
        if self.w.devices > 0:
            return self.rng.integers(0, self.w.devices, n)
        return self.rng.integers(0, 2**62, n)

    def _poisson(self, t0: float, t1: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.rng.poisson(rate * (t1 - t0)))
        times = np.sort(self.rng.uniform(t0, t1, n))
        return times, self._keys(n)

    def _diurnal(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Non-homogeneous Poisson by thinning a stream at the peak rate."""
        w = self.w
        peak_rate = w.rate * (1 + w.amplitude)
        times, keys = self._poisson(t0, t1, peak_rate)
        rate = w.rate * (1 + w.amplitude * np.cos(2 * math.pi * (times - w.peak) / w.cycle))
        keep = self.rng.uniform(0.0, peak_rate, len(times)) < rate
        return times[keep], keys[keep]

    def _periodic(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Each device reports once per period at its phase (+- jitter); emitted in time order."""
        w = self.w
        assert self._phases is not None
        parts_t, parts_k = [self._pending_t], [self._pending_k]
        while self._next_period * w.period - w.jitter < t1:
            base = self._next_period * w.period
            t = base + self._phases
            if w.jitter > 0:
                t = t + self.rng.uniform(-w.jitter, w.jitter, len(t))
            parts_t.append(t)
            parts_k.append(np.arange(w.devices, dtype=np.int64))
            self._next_period += 1
        times = np.concatenate(parts_t)
        keys = np.concatenate(parts_k)
        order = np.argsort(times, kind="stable")
        times, keys = times[order], keys[order]
        cut = int(np.searchsorted(times, t1, side="left"))
        self._pending_t, self._pending_k = times[cut:], keys[cut:]
        lo = int(np.searchsorted(times[:cut], t0, side="left"))
        return times[lo:cut], keys[lo:cut]


def windows(duration: float, chunk: float) -> list[tuple[float, float]]:
    """Consecutive [t0, t1) windows of length `chunk` covering [0, duration)."""
    edges = [*np.arange(0.0, duration, chunk).tolist(), duration]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]
