"""A host whose speed drifts: one slowness factor shared by everything a topology does.

Measured systems are not stationary hop by hop: a process is slower for a
while (CPU frequency, caches, a neighbour on the host, a collector) and every
hop of the flows in flight is slow together. A topology's ``speed`` models it:
at time t every service time, settle time and broker latency drawn is
multiplied by ``exp(X(t))``, where X is an Ornstein-Uhlenbeck process with
stationary standard deviation `sigma` and correlation time `tau`
(``corr(X(t), X(t + d)) = exp(-d / tau)``). The factor's median is 1 and its
mean ``exp(sigma**2 / 2)``.

`SpeedProcess` advances X exactly between the times it is asked about
(X(t + d) = a X(t) + sigma sqrt(1 - a**2) Z, a = exp(-d / tau)), so the
result does not depend on a step size. `fit_speed` estimates sigma and tau
from per-flow slowness factors (see `sim.from_traces`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from polybus.sim.topology import Speed

#: Draws of Z made at once (the process is asked about thousands of times a second).
BLOCK = 4096


class SpeedProcess:
    """The factor exp(X(t)) of one replication, asked at non-decreasing times."""

    __slots__ = ("_a_tau", "_buf", "_i", "rng", "sigma", "t", "x")

    def __init__(self, speed: Speed, rng: np.random.Generator) -> None:
        self.sigma = speed.sigma
        self._a_tau = 1.0 / speed.correlation_time
        self.rng = rng
        self._buf: list[float] = []
        self._i = 0
        self.t = 0.0
        self.x = self._z() * self.sigma  # started in the stationary distribution

    def _z(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self.rng.standard_normal(BLOCK).tolist()
            self._i = 0
        z = self._buf[self._i]
        self._i += 1
        return z

    def at(self, t: float) -> float:
        """The factor at time `t` (an earlier `t` than the last gets the last value)."""
        if t > self.t:
            a = math.exp((self.t - t) * self._a_tau)
            self.x = self.x * a + self.sigma * math.sqrt(1.0 - a * a) * self._z()
            self.t = t
        return math.exp(self.x)


def fit_speed(
    starts: Sequence[float], factors: Sequence[float], sizes: Sequence[int], hop_var: float
) -> Speed | None:
    """Sigma and tau of the speed from per-flow mean log ratios (None: no shared slowness shows).

    `factors[i]`: flow i's mean of log(hop duration / that hop kind's median)
    over its `sizes[i]` hops, starting at `starts[i]` s; `hop_var`: the
    variance of a hop's log ratio around its flow's mean (pooled). Variance
    components: sigma**2 = var(factors) - mean(hop_var / size). Tau is the
    integral scale of the factors' autocorrelation: the covariance of flow
    pairs, binned by their start-time distance, summed over the bins while
    it stays positive, divided by sigma**2.
    """
    if len(factors) < 30:
        return None
    f = np.asarray(factors, dtype=float)
    f = f - f.mean()
    t = np.asarray(starts, dtype=float)
    order = np.argsort(t)
    f, t = f[order], t[order]
    total = float(f.var(ddof=1))
    sigma2 = total - hop_var * float(np.mean(1.0 / np.asarray(sizes, dtype=float)))
    if sigma2 <= 0 or sigma2 < 0.01 * total:
        return None
    tau = _integral_scale(t, f, sigma2)
    return Speed(sigma=float(f"{math.sqrt(sigma2):.4g}"), correlation_time=float(f"{tau:.4g}"))


def _integral_scale(t: np.ndarray, f: np.ndarray, sigma2: float) -> float:
    """Integral of the factors' autocorrelation over the start-time distance (s)."""
    span = float(t[-1] - t[0])
    gaps = np.diff(t)
    gap = float(np.median(gaps)) if len(gaps) else 1.0
    width = max(gap, 1e-6)  # a bin per typical inter-flow time
    bins = max(1, min(int(span / width / 4), 2000))
    sums = np.zeros(bins)
    counts = np.zeros(bins)
    j0 = 0
    for i in range(1, len(t)):  # every pair closer than bins * width
        while t[i] - t[j0] >= bins * width:
            j0 += 1
        if j0 < i:
            k = ((t[i] - t[j0:i]) / width).astype(int)
            np.add.at(sums, k, f[i] * f[j0:i])
            np.add.at(counts, k, 1)
    tau = 0.0
    for k in range(bins):
        if counts[k] < 10:
            break
        rho = sums[k] / counts[k] / sigma2
        if rho <= 0:
            break
        tau += min(rho, 1.0) * width
    return max(tau, width)
