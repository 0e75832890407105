"""`speed`: a host whose speed drifts (an Ornstein-Uhlenbeck factor), and its fit from flows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from polybus.core.errors import ConfigError
from polybus.sim.engine import Model
from polybus.sim.fastpath import fast_plan
from polybus.sim.live import run_live
from polybus.sim.loader import parse_scenario
from polybus.sim.speed import SpeedProcess, fit_speed
from polybus.sim.streams import Streams
from polybus.sim.topology import Speed

SIGMA, TAU = 0.3, 2.0


def test_factor_is_stationary_with_the_declared_sigma_and_correlation() -> None:
    """log factor: mean 0, sd sigma, and correlation exp(-d / tau) at lag d."""
    process = SpeedProcess(Speed(SIGMA, TAU), np.random.default_rng(1))
    dt = 0.5
    xs = np.log([process.at(k * dt) for k in range(200_000)])
    assert abs(xs.mean()) < 4 * SIGMA * math.sqrt(2 * TAU / (dt * len(xs)))  # OU mean's sd
    assert xs.std() == pytest.approx(SIGMA, rel=0.03)
    lag1 = float(np.corrcoef(xs[:-1], xs[1:])[0, 1])
    assert lag1 == pytest.approx(math.exp(-dt / TAU), abs=0.01)
    lag8 = float(np.corrcoef(xs[:-8], xs[8:])[0, 1])
    assert lag8 == pytest.approx(math.exp(-8 * dt / TAU), abs=0.02)


def test_factor_holds_between_equal_times() -> None:
    """Asked twice at one instant (or earlier), the process answers the same factor."""
    process = SpeedProcess(Speed(SIGMA, TAU), np.random.default_rng(2))
    first = process.at(1.0)
    assert process.at(1.0) == first and process.at(0.5) == first


def delay_station(speed: dict[str, Any] | None) -> dict[str, Any]:
    """A station with ample workers and constant 10 ms work: its sojourn is the factor x 10 ms."""
    top: dict[str, Any] = {
        "entry": {"q": "s"}, "services": {"s": {"workers": 500, "service_time": 0.01}}
    }  # fmt: skip
    if speed is not None:
        top["speed"] = speed
    return {
        "name": "speed", "duration": 2000.0, "warmup": 10.0, "provider": "ideal",
        "sample_interval": 10.0, "workload": {"q": {"rate": 20.0}},
        "topologies": {"event": top},
    }  # fmt: skip


def test_engine_scales_work_by_a_lognormal_factor() -> None:
    """Sojourn mean = D exp(sigma^2 / 2), median = D, spread sd(log) = sigma."""
    sc = parse_scenario(delay_station({"sigma": SIGMA, "correlation_time": TAU}))
    model = Model(sc, sc.topologies["event"], Streams(sc.seed, 0))
    model.run()
    response = np.array(model.rec.flows["q"].response)
    # correlated draws: the effective sample is about duration / (2 tau) independent values
    n_eff = sc.duration / (2 * TAU)
    se = 0.01 * math.exp(SIGMA**2 / 2) * SIGMA / math.sqrt(n_eff)
    assert abs(response.mean() - 0.01 * math.exp(SIGMA**2 / 2)) < 4 * se
    assert np.log(response / 0.01).std() == pytest.approx(SIGMA, rel=0.1)
    assert float(np.median(response)) == pytest.approx(0.01, rel=0.05)


def test_speed_is_validated_and_needs_the_simpy_engine() -> None:
    """A bad sigma, correlation_time or key names its field; the fast engine and a live run decline."""
    with pytest.raises(ConfigError, match=r"speed\.correlation_time"):
        parse_scenario(delay_station({"sigma": 0.2, "correlation_time": 0}))
    with pytest.raises(ConfigError, match=r"speed\.sigma"):
        parse_scenario(delay_station({"sigma": -1, "correlation_time": 1}))
    with pytest.raises(ConfigError, match=r"speed\.tau=1: unknown key; expected one of"):
        parse_scenario(delay_station({"sigma": 0.2, "tau": 1}))
    sc = parse_scenario(delay_station({"sigma": 0.2, "correlation_time": 1.0}))
    assert fast_plan(sc, sc.topologies["event"]) == "a drifting speed needs the SimPy engine"
    with pytest.raises(ConfigError, match=r"topologies\.event\.speed=0\.2: models the traced"):
        run_live(sc, "event")


def flows(
    sigma: float, tau: float, hop_sd: float, n: int = 3000, hops: int = 10, seed: int = 3
) -> tuple[list[float], list[float], list[int], float]:
    """Synthetic flows at 20/s: each flow's factor is the OU at its start plus mean hop noise."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.exponential(0.05, n))
    process = SpeedProcess(Speed(sigma, tau), rng) if sigma > 0 else None
    factors = []
    for t in starts:
        x = 0.0 if process is None else math.log(process.at(float(t)))
        factors.append(x + float(rng.normal(0.0, hop_sd, hops).mean()))
    return starts.tolist(), factors, [hops] * n, hop_sd**2


def test_fit_recovers_sigma_and_tau() -> None:
    """Variance components give sigma; the autocorrelation's integral scale gives tau."""
    speed = fit_speed(*flows(0.2, 1.0, 0.4))
    assert speed is not None
    assert speed.sigma == pytest.approx(0.2, rel=0.15)
    assert speed.correlation_time == pytest.approx(1.0, rel=0.4)


def test_fit_finds_no_speed_in_independent_hops() -> None:
    """Flows whose hops share nothing show no drift: no speed is fitted."""
    speed = fit_speed(*flows(0.0, 1.0, 0.4))
    assert speed is None or speed.sigma < 0.03
