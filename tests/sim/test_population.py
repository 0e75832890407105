"""Device populations as arrays: counts and rates of each arrival pattern."""

from __future__ import annotations

import numpy as np
import pytest

from polybus.sim.population import ArrivalSource, windows
from polybus.sim.topology import Workload


def _all(w: Workload, duration: float, chunk: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    src = ArrivalSource(w, np.random.default_rng(1))
    parts = [src.window(a, b) for a, b in windows(duration, chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_periodic_population_reports_once_per_period_per_device() -> None:
    """10,000 devices every 60 s with +-5 s jitter: each device appears once per period, in time order."""
    t, k = _all(
        Workload("x", "periodic", devices=10_000, period=60.0, jitter=5.0), 600.0, chunk=90.0
    )
    assert np.all(np.diff(t) >= 0)
    counts = np.bincount(k, minlength=10_000)
    assert counts.min() >= 9 and counts.max() <= 11
    assert len(t) == pytest.approx(100_000, abs=600)  # jitter pushes a few past either end


def test_poisson_superposition_rate_and_device_ids() -> None:
    """A Poisson population of 1e5 devices at 0.01/s is one stream at 1,000/s with uniform device ids."""
    t, k = _all(Workload("x", "poisson", rate=1000.0, devices=100_000), 100.0)
    assert len(t) == pytest.approx(100_000, rel=0.02)
    assert k.min() >= 0 and k.max() < 100_000


def test_bursts_are_synchronised() -> None:
    """Burst pattern: every device reports within `spread` seconds after each period boundary."""
    t, _ = _all(Workload("x", "burst", devices=5000, period=60.0, spread=2.0), 300.0)
    assert np.all(np.mod(t, 60.0) < 2.0)
    assert len(t) == 5 * 5000


def test_diurnal_rate_follows_the_curve() -> None:
    """Diurnal thinning: more arrivals near the peak than near the trough of the cycle."""
    w = Workload("x", "diurnal", rate=100.0, amplitude=0.8, cycle=1000.0, peak=250.0)
    t, _ = _all(w, 1000.0)
    near_peak = ((t > 200) & (t < 300)).sum()
    near_trough = ((t > 700) & (t < 800)).sum()
    assert near_peak > 4 * near_trough
    assert len(t) == pytest.approx(100_000, rel=0.03)
