"""`hosts`: services sharing a host's CPUs (processor sharing), checked against M/G/1-PS and M/M/c."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import simpy

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.sim.engine import Model
from polybus.sim.fastpath import fast_plan
from polybus.sim.host import SharedCpu, demands
from polybus.sim.live import run_live
from polybus.sim.loader import parse_scenario
from polybus.sim.runner import run_scenario
from polybus.sim.streams import Streams
from polybus.sim.topology import Scenario

SERVICE = 0.010  # mean seconds of CPU work per visit


def shared(
    services: dict[str, float], service_time: Any = SERVICE, cpus: int = 1,
    duration: float = 500.0,
) -> dict[str, Any]:  # fmt: skip
    """Services (name -> Poisson rate) on one host of `cpus`, each with ample workers."""
    return {
        "name": "host", "duration": duration, "warmup": duration / 20, "provider": "ideal",
        "sample_interval": 10.0,
        "workload": {name: {"rate": rate} for name, rate in services.items()},
        "topologies": {"event": {
            "entry": {name: name for name in services},
            "hosts": {"box": {"cpus": cpus}},
            "services": {
                name: {"workers": 200, "service_time": service_time, "host": "box"}
                for name in services
            },
        }},
    }  # fmt: skip


def run(sc: Scenario, replication: int) -> Model:
    """One replication of the event topology on the SimPy engine."""
    model = Model(sc, sc.topologies["event"], Streams(sc.seed, replication))
    model.run()
    return model


def mean_response(sc: Scenario, flow: str, replications: int = 5) -> tuple[float, float]:
    """Mean response over replications, and its standard error."""
    means = [float(np.mean(run(sc, r).rec.flows[flow].response)) for r in range(replications)]
    return float(np.mean(means)), float(np.std(means, ddof=1)) / math.sqrt(replications)


@pytest.mark.parametrize(
    "service_time",
    [SERVICE, {"dist": "exponential", "mean": SERVICE}],
    ids=["deterministic", "exponential"],
)
def test_one_cpu_is_m_g_1_ps_whatever_the_distribution(service_time: Any) -> None:
    """Mean response = E[S] / (1 - rho) for deterministic and exponential work alike (insensitivity)."""
    rate = 60.0  # rho = 0.6
    sc = parse_scenario(shared({"q": rate}, service_time))
    mean, se = mean_response(sc, "q")
    theory = SERVICE / (1 - rate * SERVICE)
    assert abs(mean - theory) < 3 * se + 0.02 * theory
    assert mean > 2 * SERVICE  # far from the unshared 10 ms: the sharing is there


def test_services_on_one_host_slow_each_other() -> None:
    """Two services on one CPU: each sees E[S] / (1 - rho_total), the host's whole load."""
    sc = parse_scenario(shared({"a": 30.0, "b": 20.0}, {"dist": "exponential", "mean": SERVICE}))
    theory = SERVICE / (1 - 50.0 * SERVICE)
    for flow in ("a", "b"):
        mean, se = mean_response(sc, flow)
        assert abs(mean - theory) < 3 * se + 0.02 * theory


def test_two_cpus_match_m_m_2() -> None:
    """With c = 2 CPUs and exponential work, the number in service follows M/M/2 (Erlang C)."""
    rate, c = 150.0, 2
    sc = parse_scenario(shared({"q": rate}, {"dist": "exponential", "mean": SERVICE}, cpus=c))
    a = rate * SERVICE
    rho = a / c
    erlang_b = 1.0
    for k in range(1, c + 1):
        erlang_b = a * erlang_b / (k + a * erlang_b)
    erlang_c = erlang_b / (1 - rho * (1 - erlang_b))
    theory = (c * rho + erlang_c * rho / (1 - rho)) / rate  # Little: L / lambda
    mean, se = mean_response(sc, "q")
    assert abs(mean - theory) < 3 * se + 0.02 * theory


def test_host_utilisation_is_the_offered_load() -> None:
    """The CPU served rate x E[S] of each second."""
    model = run(parse_scenario(shared({"q": 40.0})), 0)
    host = model.hosts["box"]
    assert host.busy_area / model.env.now == pytest.approx(40.0 * SERVICE, rel=0.05)


def test_work_shares_the_cpu_equally() -> None:
    """Two pieces of 1 s started together both end at 2 s; a third started at 1 s ends later."""
    env = simpy.Environment()
    cpu = SharedCpu(env, 1)
    ended: dict[str, float] = {}

    def job(name: str, start: float, seconds: float) -> Any:
        yield env.timeout(start)
        yield cpu.work(seconds)
        ended[name] = env.now

    env.process(job("a", 0.0, 1.0))
    env.process(job("b", 0.0, 1.0))
    env.process(job("c", 1.0, 1.0))
    env.run()
    # 0-1 s: a, b at 1/2 each; 1-2.5 s: a, b, c at 1/3 each; a and b are done at 2.5 s
    assert ended["a"] == pytest.approx(2.5) and ended["b"] == pytest.approx(2.5)
    assert ended["c"] == pytest.approx(3.0)  # 0.5 s served by then, the rest alone


def test_demands_invert_processor_sharing() -> None:
    """The integral of 1/n over each interval recovers the work PS turned into those durations."""
    ms = 1_000_000
    intervals = [(0, 2500 * ms), (0, 2500 * ms), (1000 * ms, 3000 * ms)]  # the durations above
    assert list(demands(intervals)) == pytest.approx([1.0, 1.0, 1.0])
    assert list(demands([(0, 5 * ms)])) == pytest.approx([0.005])


def test_hosts_are_validated() -> None:
    """An unknown host names the field with a did-you-mean; cpus must be an integer >= 1."""
    doc = shared({"q": 10.0})
    doc["topologies"]["event"]["services"]["q"]["host"] = "bxo"
    with pytest.raises(ConfigError, match=r"services\.q\.host.*did you mean 'box'"):
        parse_scenario(doc)
    doc = shared({"q": 10.0})
    doc["topologies"]["event"]["hosts"]["box"] = {"cpus": 0}
    with pytest.raises(ConfigError, match=r"hosts\.box\.cpus"):
        parse_scenario(doc)
    doc = shared({"q": 10.0})
    doc["topologies"]["event"]["hosts"]["box"] = {"cpu": 1}
    with pytest.raises(ConfigError, match=r"hosts\.box\.cpu\b.*did you mean 'cpus'"):
        parse_scenario(doc)


def test_shared_hosts_need_the_simpy_engine_and_cannot_run_live() -> None:
    """The fast engine declines a host; a live run refuses it, naming the field."""
    sc = parse_scenario(shared({"q": 10.0}, duration=1.0))
    assert fast_plan(sc, sc.topologies["event"]) == "shared hosts need the SimPy engine"
    with Bus(MemoryBus()) as bus, pytest.raises(ConfigError, match=r"topologies\.event\.hosts"):
        run_live(sc, "event", bus=bus)


def publishing(in_process_bus: object) -> dict[str, Any]:
    """A publisher and a subscriber on one host, 5 ms of delivery latency between them."""
    host: dict[str, Any] = {"cpus": 1}
    if in_process_bus is not None:
        host["in_process_bus"] = in_process_bus
    return {
        "name": "bus", "duration": 200.0, "warmup": 10.0, "provider": "ideal",
        "sample_interval": 10.0, "workload": {"q": {"rate": 20.0}},
        "topologies": {"event": {
            "entry": {"q": "pub"}, "hosts": {"box": host},
            "topics": {"t": {"publish_latency": 0.0, "delivery_latency": 0.005}},
            "services": {
                "pub": {"workers": 10, "service_time": 0.002, "host": "box", "publish": "t"},
                "sub": {"workers": 10, "service_time": 0.003, "host": "box", "consumes": ["t"]},
            },
        }},
    }  # fmt: skip


def test_broker_latency_is_host_work_only_with_an_in_process_bus() -> None:
    """A remote broker's delivery is a delay; an in-process bus delivers on the host's CPU."""
    remote = run(parse_scenario(publishing(None)), 0)
    assert remote.hosts["box"].busy_area / remote.env.now == pytest.approx(
        20.0 * (0.002 + 0.003), rel=0.05
    )
    local = run(parse_scenario(publishing(True)), 0)
    assert local.hosts["box"].busy_area / local.env.now == pytest.approx(
        20.0 * (0.002 + 0.003 + 0.005), rel=0.05
    )
    with pytest.raises(
        ConfigError, match=r"hosts\.box\.in_process_bus='yes': must be true or false"
    ):
        parse_scenario(publishing("yes"))


def test_host_results_match_m_g_1_ps() -> None:
    """In the run's results: utilisation = offered CPUs = rho, mean work in progress = rho / (1 - rho)."""
    rate = 60.0
    doc = run_scenario(parse_scenario(shared({"q": rate})), replications=3, workers=1)
    host = doc.runs["event"].hosts["box"]
    rho = rate * SERVICE
    assert host.utilisation.value == pytest.approx(rho, rel=0.03)
    assert host.offered.value == pytest.approx(rho, rel=0.03)
    assert host.in_progress.value == pytest.approx(rho / (1 - rho), rel=0.1)
    assert host.cpus == 1.0 and not doc.runs["event"].overload


def test_an_overloaded_host_says_its_figures_are_not_steady() -> None:
    """Offered more CPU-seconds per second than it has CPUs, the run is flagged, naming the host."""
    doc = run_scenario(
        parse_scenario(shared({"q": 120.0}, duration=60.0)), replications=1, workers=1
    )
    flags = [o for o in doc.runs["event"].overload if o.where == "host box"]
    assert len(flags) == 1 and flags[0].offered is not None and flags[0].offered > 1.0
    assert "host box is overloaded: offered 1.2 CPUs, capacity 1" in flags[0].message
