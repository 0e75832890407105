"""The scenario model: workloads, faults and one or more topologies of services.

Plain frozen dataclasses, built and validated by `sim.loader` from YAML. A
scenario describes one business flow (or several) and the topologies that
implement it, e.g. ``request`` (synchronous calls) and ``event`` (a broker in
between); `sim compare` runs them under the same load with the same seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polybus.sim.distributions import Distribution

PATTERNS = ("poisson", "periodic", "burst", "diurnal")
ENGINES = ("auto", "simpy", "fast")


@dataclass(frozen=True)
class Call:
    """A synchronous step: call one target, or fan out and wait for `join` successes.

    The caller holds its worker while it waits (a layered queue). `timeout`
    bounds each attempt; a failed or timed-out attempt is retried `retries`
    times after ``backoff * multiplier**i`` seconds.
    """

    targets: tuple[str, ...]
    join: int
    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.0
    multiplier: float = 2.0


@dataclass(frozen=True)
class Publish:
    """An asynchronous edge: after its work the service publishes to `topic` with probability `p`.

    Entries sharing a `group` are exclusive (one_of): one uniform draw picks at
    most one of them (e.g. payment-succeeded 0.9 / payment-failed 0.1).
    """

    topic: str
    p: float = 1.0
    group: int | None = None


@dataclass(frozen=True)
class Service:
    """A pool of workers with a service-time distribution.

    `partitions` > 1 splits the service into FIFO lanes of `workers` each,
    keyed by device or request id (a partitioned consumer, like shards).
    `join` (``join: all``): a delivery's visit makes the service's calls and
    publishes only once one event of every consumed topic has been handled for
    the same flow instance, after the last of them (e.g. confirm an order once
    stock is reserved and payment charged); each visit still holds a worker.
    `settle_time`: how long a visit that made calls or published keeps its
    worker after them (finishing up, acknowledging its delivery); nothing
    downstream waits for it, but the next visit queues behind it. None: 0.
    `host`: the topology's host whose CPUs its work shares (`sim.host`): its
    service and settle times are then CPU work there, and so are its
    publishes' and deliveries' broker latencies when the host's bus runs
    in-process. None: they are plain delays.
    """

    name: str
    workers: int
    service_time: Distribution
    partitions: int = 1
    error_rate: float = 0.0
    calls: tuple[Call, ...] = ()
    publishes: tuple[Publish, ...] = ()
    consumes: tuple[str, ...] = ()
    settle_time: Distribution | None = None
    join: bool = False
    host: str | None = None


@dataclass(frozen=True)
class ReadModel:
    """A projection fed by events; its lag is the consistency window readers see.

    `since` is where the window starts: ``event`` (the publish of the consumed
    event) or ``flow`` (the request that started the chain, e.g. a saga's order).
    """

    name: str
    consumes: tuple[str, ...]
    workers: int
    projection_time: Distribution
    since: str = "event"


@dataclass(frozen=True)
class Speed:
    """The host's drifting speed: every service time, settle time and broker latency x exp(X(t)).

    X is an Ornstein-Uhlenbeck process with stationary standard deviation
    `sigma` and correlation time `correlation_time` s (see `sim.speed`).
    """

    sigma: float
    correlation_time: float


@dataclass(frozen=True)
class Host:
    """A machine or process whose `cpus` its services share (processor sharing; see `sim.host`).

    `in_process_bus`: the bus runs inside it (the embedded local bus), so the
    broker latencies of its services' publishes and deliveries are CPU work
    there too; otherwise (a remote broker) they are delays.
    """

    name: str
    cpus: int
    in_process_bus: bool = False


@dataclass(frozen=True)
class Topology:
    """One implementation of the scenario's flows.

    `speed`: the host's drift (None: steady); `hosts`: CPUs its services share.
    """

    name: str
    entry: Mapping[str, str]
    services: Mapping[str, Service]
    topics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    read_models: Mapping[str, ReadModel] = field(default_factory=dict)
    provider: str | None = None
    speed: Speed | None = None
    hosts: Mapping[str, Host] = field(default_factory=dict)

    def subscribers(self, topic: str) -> list[str]:
        """Services and read models consuming `topic`, in declaration order."""
        names = [s.name for s in self.services.values() if topic in s.consumes]
        return names + [r.name for r in self.read_models.values() if topic in r.consumes]


@dataclass(frozen=True)
class Workload:
    """Arrivals of one flow: a request stream or a device population.

    poisson: `rate` per second in total (or `devices` x `rate_per_device`);
    periodic: each of `devices` reports every `period` s at a fixed phase, +- `jitter`;
    burst: every `period` s all devices report within `spread` s of the boundary;
    diurnal: Poisson with rate ``rate * (1 + amplitude * cos(2 pi (t - peak) / cycle))``.
    """

    flow: str
    pattern: str
    rate: float = 0.0
    devices: int = 0
    period: float = 60.0
    jitter: float = 0.0
    spread: float = 1.0
    amplitude: float = 0.0
    cycle: float = 86400.0
    peak: float = 0.0

    @property
    def mean_rate(self) -> float:
        """Long-run arrivals per second."""
        if self.pattern in ("periodic", "burst"):
            return self.devices / self.period
        return self.rate


@dataclass(frozen=True)
class Fault:
    """A service slows by `factor` (slowdown) or refuses work (outage) during [start, end)."""

    service: str
    kind: str
    start: float
    end: float
    factor: float = 1.0


@dataclass(frozen=True)
class Exercise:
    """A teaching exercise: a question, a change to try, the metric to watch and the expected effect.

    `answer` is a template: ``{baseline}``, ``{changed}``, ``{delta}`` (relative
    change, e.g. +37%) and ``{ratio}`` are filled in from the measurement, so
    the prose cannot drift from the numbers.
    """

    question: str
    change: Mapping[str, Any]
    topology: str
    metric: str
    expect: Mapping[str, float]
    answer: str = ""
    duration: float | None = None
    warmup: float | None = None
    replications: int = 3
    unit: str | None = None


@dataclass(frozen=True)
class Scenario:
    """Everything one YAML file describes."""

    name: str
    file: str
    duration: float
    warmup: float
    replications: int
    seed: int
    workloads: tuple[Workload, ...]
    topologies: Mapping[str, Topology]
    faults: tuple[Fault, ...] = ()
    provider: str = "local"
    description: str = ""
    sample_interval: float = 1.0
    stale_grid: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
    engine: str = "auto"
    chunk: float = 60.0
    lesson: str = ""
    exercises: tuple[Exercise, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
