"""Typed results: what one replication measured, what a run aggregates, and the run document.

The same frozen dataclasses describe one replication (numbers are floats,
series are tuples of floats) and the aggregate over replications (numbers
become a `Summary`, series a `Series`): `fold` turns a list of the former into
the latter by walking the dataclass fields, never by key names, so a user's
topic or service named ``t`` or ``start`` can never collide with a result
field. `to_json` is the one function that writes the documented wire format
``polybus.sim/1`` (docs/sim.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Generic, TypeVar

from polybus.core.extras import Requirement
from polybus.sim.stats import summarize

SCHEMA = "polybus.sim/1"
N = TypeVar("N")  # a number: float in one replication, Summary over replications
V = TypeVar("V")  # a series: tuple[float, ...] in one replication, Series over replications
FIXED: Mapping[str, Any] = {"fixed": True}  # the same in every replication: carried, not summarised
PANDAS = Requirement("RunDocument.to_dataframe()", ("pandas",), "notebook")


@dataclass(frozen=True)
class Summary:
    """A number over replications: mean, sample sd, 95% CI (Student t), and each replication's value."""

    mean: float | None
    sd: float | None
    ci95: tuple[float | None, float | None]
    halfwidth: float | None
    n: int
    values: tuple[float | None, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarise per-replication values (NaN means undefined and is skipped)."""
        s = summarize(values)
        return cls(
            mean=s["mean"],
            sd=s["sd"],
            ci95=(s["ci95"][0], s["ci95"][1]),
            halfwidth=s["halfwidth"],
            n=s["n"],
            values=tuple(None if math.isnan(float(v)) else float(v) for v in values),
        )

    @property
    def value(self) -> float:
        """The mean, NaN when undefined (convenient for arithmetic and formatting)."""
        return math.nan if self.mean is None else self.mean


@dataclass(frozen=True)
class Series:
    """A time series or curve over replications: pointwise mean and 95% CI half-width."""

    mean: tuple[float | None, ...]
    halfwidth: tuple[float | None, ...]


@dataclass(frozen=True)
class Cdf(Generic[V]):
    """Quantiles at fixed percents (the points of a latency CDF)."""

    percent: tuple[float, ...] = field(metadata=FIXED)
    x: V


@dataclass(frozen=True)
class Quantiles(Generic[N, V]):
    """Mean and tail quantiles of a duration, seconds."""

    mean: N
    p50: N
    p95: N
    p99: N
    p999: N
    cdf: Cdf[V]


@dataclass(frozen=True)
class FlowResult(Generic[N, V]):
    """One business flow: outcomes of the flows started in the window, and their latencies."""

    count: N
    throughput: N
    success_rate: N
    error_rate: N
    timeout_rate: N
    not_completed_rate: N
    in_progress: N
    oldest_in_progress: N
    latency: Quantiles[N, V]
    completion: Quantiles[N, V]


@dataclass(frozen=True)
class StationResult(Generic[N]):
    """A service or read-model projector: utilisation, Little's law inputs and offered load."""

    utilisation: N
    L: N
    lambda_: N = field(metadata={"json": "lambda"})
    W: N
    Wq: N
    little_gap: N
    offered: N
    capacity: float = field(metadata=FIXED)


@dataclass(frozen=True)
class HostResult(Generic[N]):
    """A shared host: CPU utilisation, mean pieces of work in progress, offered CPUs against `cpus`."""

    utilisation: N
    in_progress: N
    offered: N
    cpus: float = field(metadata=FIXED)


@dataclass(frozen=True)
class TopicResult(Generic[N]):
    """Counters and rates of one broker topic."""

    published: N
    publish_requests: N
    throttled: N
    throttle_rate: N
    publish_failed: N
    deliveries: N
    dead_lettered: N
    events_per_s: N
    deliveries_per_s: N
    requests_per_s: N


@dataclass(frozen=True)
class ReadModelResult(Generic[N, V]):
    """The consistency window of a read model and the stale-read curve."""

    window: Quantiles[N, V]
    lost: N
    stale_grid: tuple[float, ...] = field(metadata=FIXED)
    p_stale: V


@dataclass(frozen=True)
class BacklogResult(Generic[N, V]):
    """Flows in progress and undelivered events per topic, sampled over time."""

    t: tuple[float, ...] = field(metadata=FIXED)
    in_flight: V
    topics: Mapping[str, V]
    growing: N  # 1 when flows in progress grew through the second half of the window, else 0


@dataclass(frozen=True)
class Phase(Generic[N]):
    """Entry success and mean latency of the flows started in one phase of a fault."""

    success_rate: N
    latency_mean: N


@dataclass(frozen=True)
class FaultResult(Generic[N]):
    """Failure propagation around one fault: before, during and after it."""

    service: str = field(metadata=FIXED)
    kind: str = field(metadata=FIXED)
    start: float = field(metadata=FIXED)
    end: float = field(metadata=FIXED)
    before: Phase[N]
    during: Phase[N]
    after: Phase[N]
    peak_backlog: N
    drain_time: N


@dataclass(frozen=True)
class Measures(Generic[N, V]):
    """Everything one topology measured: per replication (floats) or aggregated (summaries)."""

    flows: Mapping[str, FlowResult[N, V]]
    services: Mapping[str, StationResult[N]]
    topics: Mapping[str, TopicResult[N]]
    read_models: Mapping[str, ReadModelResult[N, V]]
    backlog: BacklogResult[N, V]
    faults: tuple[FaultResult[N], ...]
    hosts: Mapping[str, HostResult[N]] = field(default_factory=dict)


Replication = Measures[float, tuple[float, ...]]
Aggregate = Measures[Summary, Series]


@dataclass(frozen=True)
class Cost:
    """Monthly broker cost of the simulated rates (USD, 30-day month)."""

    topics: Mapping[str, float]
    total: float
    currency: str = "USD"
    period: str = "30-day month"


@dataclass(frozen=True)
class Overload:
    """A run whose figures are not steady-state: a station at or over capacity, or a growing backlog."""

    reason: str  # "offered load" or "growing backlog"
    where: str
    offered: float | None
    capacity: float | None
    message: str


@dataclass(frozen=True)
class RunResult:
    """One topology (under one provider), aggregated over its replications."""

    topology: str
    provider: str
    engine: str
    replications: tuple[int, ...]
    flows: Mapping[str, FlowResult[Summary, Series]]
    services: Mapping[str, StationResult[Summary]]
    topics: Mapping[str, TopicResult[Summary]]
    read_models: Mapping[str, ReadModelResult[Summary, Series]]
    backlog: BacklogResult[Summary, Series]
    faults: tuple[FaultResult[Summary], ...]
    cost: Cost
    overload: tuple[Overload, ...] = ()
    hosts: Mapping[str, HostResult[Summary]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDocument:
    """A whole `sim run` / `sim compare`: the document schema ``polybus.sim/1`` describes."""

    scenario: str
    file: str
    seed: int
    replications: int
    completed_replications: int
    tasks_total: int
    tasks_completed: int
    interrupted: bool
    replication_seeds: tuple[tuple[int, int], ...]
    duration: float
    warmup: float
    workers: int
    wall_seconds: float
    runs: Mapping[str, RunResult]
    description: str = ""
    lesson: str = ""
    schema: str = SCHEMA

    def to_json(self) -> dict[str, Any]:
        """The JSON-able document (NaN and infinities as null)."""
        out = to_json(self)
        assert isinstance(out, dict)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per (run, flow): the headline figures, means over replications."""
        records = []
        for key, run in self.runs.items():
            for flow, f in run.flows.items():
                records.append(
                    {
                        "run": key, "topology": run.topology, "provider": run.provider, "flow": flow,
                        "response_mean": f.latency.mean.mean, "response_p99": f.latency.p99.mean,
                        "completion_mean": f.completion.mean.mean,
                        "completion_p99": f.completion.p99.mean,
                        "throughput": f.throughput.mean, "success_rate": f.success_rate.mean,
                        "not_completed_rate": f.not_completed_rate.mean,
                        "cost_usd_month": run.cost.total, "overloaded": bool(run.overload),
                    }
                )  # fmt: skip
        return records

    def to_dataframe(self) -> Any:
        """`rows()` as a pandas DataFrame (needs the ``notebook`` extra: pandas)."""
        PANDAS.check()
        import pandas as pd

        return pd.DataFrame.from_records(self.rows())


def fold(items: Sequence[Any]) -> Any:
    """Aggregate replications: numbers -> Summary, float tuples -> Series, dataclasses and mappings field by field."""
    first = items[0]
    if is_dataclass(first) and not isinstance(first, type):
        kwargs = {}
        for f in fields(first):
            values = [getattr(it, f.name) for it in items]
            kwargs[f.name] = values[0] if f.metadata.get("fixed") else fold(values)
        return type(first)(**kwargs)
    if isinstance(first, Mapping):
        keys = list(dict.fromkeys(k for it in items for k in it))
        return {k: fold([it[k] for it in items if k in it]) for k in keys}
    if isinstance(first, tuple) and not first:
        return ()
    if isinstance(first, tuple) and is_dataclass(first[0]):
        n = min(len(it) for it in items)
        return tuple(fold([it[i] for it in items]) for i in range(n))
    if isinstance(first, tuple):
        n = min(len(it) for it in items)
        cols = [summarize([it[i] for it in items]) for i in range(n)]
        return Series(tuple(c["mean"] for c in cols), tuple(c["halfwidth"] for c in cols))
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    return Summary.of([float(x) for x in items])


def to_json(value: Any) -> Any:
    """The JSON form of any result value: dataclasses as objects (documented field names), NaN as null."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.metadata.get("json", f.name): to_json(getattr(value, f.name)) for f in fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value
