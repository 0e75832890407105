"""Closed forms from queueing theory that the validation tests hold the engine to."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mm1_wq(lam: float, mu: float) -> float:
    """M/M/1 mean wait in queue: rho / (mu - lam)."""
    return (lam / mu) / (mu - lam)


def mm1_w(lam: float, mu: float) -> float:
    """M/M/1 mean sojourn: 1 / (mu - lam)."""
    return 1.0 / (mu - lam)


def mm1_sojourn_quantile(lam: float, mu: float, p: float) -> float:
    """M/M/1 sojourn is Exp(mu - lam): its p-quantile is -ln(1 - p) / (mu - lam)."""
    return -math.log(1.0 - p) / (mu - lam)


def erlang_c(lam: float, mu: float, c: int) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C)."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_wq(lam: float, mu: float, c: int) -> float:
    """M/M/c mean wait in queue: C(c, a) / (c mu - lam)."""
    return erlang_c(lam, mu, c) / (c * mu - lam)


def mmc_l(lam: float, mu: float, c: int) -> float:
    """M/M/c mean number in system: lam Wq + lam / mu."""
    return lam * mmc_wq(lam, mu, c) + lam / mu


def pk_wq(lam: float, mean_s: float, second_moment_s: float) -> float:
    """M/G/1 mean wait (Pollaczek-Khinchine): lam E[S^2] / (2 (1 - rho))."""
    return lam * second_moment_s / (2 * (1 - lam * mean_s))


def jackson(
    gamma: Sequence[float],
    routing: Sequence[Sequence[float]],
    mu: Sequence[float],
    servers: Sequence[int],
) -> tuple[list[float], list[float], float]:
    """Open Jackson network: per-node arrival rates, mean numbers in system, network mean sojourn.

    Solves lam = gamma + P^T lam, treats each node as M/M/c, and returns
    sum(L_i) / sum(gamma) as the mean time a customer spends in the network.
    """
    p = np.asarray(routing, dtype=float)
    lam = np.linalg.solve(np.eye(len(gamma)) - p.T, np.asarray(gamma, dtype=float))
    ls = [mmc_l(float(lam_i), m, c) for lam_i, m, c in zip(lam, mu, servers, strict=True)]
    return [float(x) for x in lam], ls, sum(ls) / sum(gamma)


def fanout_slow(p: float, n: int) -> float:
    """Probability that a request waiting for all of n calls is slow, each slow with prob p."""
    return 1 - (1 - p) ** n


def max_exp_mean(n: int, mu: float) -> float:
    """Mean of the max of n iid Exp(mu): H_n / mu."""
    return sum(1.0 / k for k in range(1, n + 1)) / mu
