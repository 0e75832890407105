"""`settle_time`: a visit keeps its worker after acting (acking its delivery); its caller goes on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.sim.engine import Model
from polybus.sim.fastpath import fast_plan
from polybus.sim.live import prepare, run_live
from polybus.sim.live.compare import live_result
from polybus.sim.loader import parse_scenario
from polybus.sim.streams import Streams
from polybus.sim.topology import Scenario

RATE, SERVICE, SETTLE = 20.0, 0.010, 0.020  # per s; constant seconds of work and of settling


def settling(
    settle: object = SETTLE, duration: float = 2000.0, warmup: float = 100.0
) -> dict[str, Any]:
    """One worker serving a Poisson stream, publishing once per visit, then settling: M/D/1."""
    service: dict[str, Any] = {"workers": 1, "service_time": SERVICE, "publish": "done"}
    if settle is not None:
        service["settle_time"] = settle
    return {
        "name": "settle", "duration": duration, "warmup": warmup, "provider": "ideal",
        "sample_interval": 10.0, "workload": {"q": {"rate": RATE}},
        "topologies": {"event": {"entry": {"q": "s"}, "services": {"s": service}}},
    }  # fmt: skip


def run(sc: Scenario, replication: int) -> Model:
    """One replication of the event topology on the SimPy engine."""
    model = Model(sc, sc.topologies["event"], Streams(sc.seed, replication))
    model.run()
    return model


def test_settle_time_queues_the_next_visit_as_m_d_1_says() -> None:
    """Response = M/D/1 wait for a worker held S + H, plus S: the settle itself is not waited for."""
    sc = parse_scenario(settling())
    hold = SERVICE + SETTLE
    rho = RATE * hold
    theory = RATE * hold**2 / (2 * (1 - rho)) + SERVICE  # Pollaczek-Khinchine wait + own work
    means = [float(np.mean(run(sc, r).rec.flows["q"].response)) for r in range(5)]
    sd = float(np.std(means, ddof=1))
    assert abs(float(np.mean(means)) - theory) < 3 * sd / math.sqrt(len(means)) + 1e-4
    assert min(means) > SERVICE * 1.5  # the queueing the settle causes is there


def test_utilisation_counts_the_settle() -> None:
    """The worker is busy for service + settle: utilisation = rate x (S + H)."""
    stats = run(parse_scenario(settling()), 0).rec.stations["s"]
    busy = stats.busy_area / stats.last
    assert busy == pytest.approx(RATE * (SERVICE + SETTLE), rel=0.05)
    without = run(parse_scenario(settling(None)), 0).rec.stations["s"]
    assert without.busy_area / without.last == pytest.approx(RATE * SERVICE, rel=0.05)


def test_settle_time_is_validated_and_needs_the_simpy_engine() -> None:
    """A bad settle_time names the field; a valid one makes the fast engine decline."""
    with pytest.raises(ConfigError, match=r"services\.s\.settle_time"):
        parse_scenario(settling({"dist": "exponential"}))
    sc = parse_scenario(settling())
    assert fast_plan(sc, sc.topologies["event"]) == "settle times need the SimPy engine"


def test_live_run_answers_before_settling() -> None:
    """Live, a visit answers before its settle: its sojourn exceeds the response by the settle."""
    sc = prepare(parse_scenario(settling(duration=2.0, warmup=0.0)), provider="local", duration=2.0)
    with Bus(MemoryBus()) as bus:
        result = live_result(sc, run_live(sc, "event", bus=bus))
    flows, station = result.flows["q"], result.services["s"]
    assert flows.count.value > 10
    # the same visits, the same queueing: what separates the two is the settle the caller skipped
    assert station.W.value - flows.latency.mean.value > 0.5 * SETTLE
    assert station.utilisation.value > RATE * SERVICE  # and the worker was busy for it
