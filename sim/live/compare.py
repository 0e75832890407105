"""Set a live run beside the simulation of the same scenario: same seed, duration and rate scale.

`prepare` scales the scenario (arrival rates x `rate_scale`, duration, the
broker profile of the live provider, one replication); the simulation runs
replication 0, whose named streams the live run drew from. `compare` builds
one `Row` per figure, named by its metric path in the run document
(``flows.checkout.latency.p50``), with the relative error
``(live - simulated) / simulated`` (None where either is undefined or the
simulated figure is 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from polybus.core.errors import ConfigError, Problem
from polybus.sim.live.run import LiveRun
from polybus.sim.metrics import aggregate
from polybus.sim.results import Cost, RunDocument, RunResult, Summary, to_json
from polybus.sim.runner import overloads, run_scenario
from polybus.sim.topology import Scenario, Workload

SCHEMA = "polybus.sim.live/1"
QUANTS = ("mean", "p50", "p95", "p99")


@dataclass(frozen=True)
class Row:
    """One figure, simulated and live, and the live figure's relative error."""

    metric: str
    simulated: float | None
    live: float | None
    relative_error: float | None


@dataclass(frozen=True)
class Comparison:
    """A live run and the simulation of the same scenario, figure by figure."""

    scenario: str
    file: str
    topology: str
    provider: str
    transport: str
    seed: int
    duration: float
    warmup: float
    rate_scale: float
    sleep_bias: float
    wall_seconds: float
    rows: tuple[Row, ...]
    simulated: RunResult
    live: RunResult
    profile: str | None = None  # a calibrated profile file the simulation used, if any

    def to_json(self) -> dict[str, Any]:
        """The ``polybus.sim.live/1`` document: settings, the comparison rows and both runs."""
        out = {
            "schema": SCHEMA, "scenario": self.scenario, "file": self.file,
            "topology": self.topology, "provider": self.provider, "transport": self.transport,
            "seed": self.seed, "duration": self.duration, "warmup": self.warmup,
            "rate_scale": self.rate_scale, "profile": self.profile,
            "sleep_bias": self.sleep_bias, "wall_seconds": self.wall_seconds,
            "comparison": [to_json(r) for r in self.rows],
            "runs": {"simulated": to_json(self.simulated), "live": to_json(self.live)},
        }  # fmt: skip
        result = to_json(out)
        assert isinstance(result, dict)
        return result

    def document(self) -> RunDocument:
        """Both runs as one run document (keys ``<topology> simulated`` and ``<topology> live``)."""
        return RunDocument(
            scenario=self.scenario, file=self.file, seed=self.seed, replications=1,
            completed_replications=1, tasks_total=2, tasks_completed=2, interrupted=False,
            replication_seeds=((self.seed, 0),), duration=self.duration, warmup=self.warmup,
            workers=1, wall_seconds=self.wall_seconds,
            runs={f"{self.topology} simulated": self.simulated, f"{self.topology} live": self.live},
        )  # fmt: skip


def scale_workload(w: Workload, x: float) -> Workload:
    """A workload with `x` times the arrivals (rate, or devices for populations)."""
    if w.pattern in ("periodic", "burst") or (w.devices and not w.rate):
        return replace(w, devices=max(1, round(w.devices * x)))
    return replace(w, rate=w.rate * x)


def prepare(
    scenario: Scenario, *, provider: str, duration: float | None = None, rate_scale: float = 1.0,
    seed: int | None = None, overrides: Mapping[str, Any] | None = None,
) -> Scenario:  # fmt: skip
    """The scenario both sides run: rates x `rate_scale`, `duration`, the live provider's profile.

    `overrides` (e.g. a calibrated profile's latencies) apply to every topic of
    every topology. The warm-up is cut to a tenth of the duration when it
    would not fit.
    """
    problems = []
    if not rate_scale > 0 or math.isinf(rate_scale):
        problems.append(Problem("rate_scale", rate_scale, "must be a number > 0"))
    if duration is not None and not duration > 0:
        problems.append(Problem("duration", duration, "must be a number > 0"))
    if problems:
        raise ConfigError(scenario.file, problems)
    dur = scenario.duration if duration is None else float(duration)
    warmup = scenario.warmup if scenario.warmup < dur else dur / 10
    tops = {}
    for name, top in scenario.topologies.items():
        topics: dict[str, Mapping[str, Any]] = dict(top.topics)
        if overrides:
            published = {p.topic for s in top.services.values() for p in s.publishes}
            for t in sorted(published | set(topics)):
                topics[t] = {**dict(topics.get(t, {})), **overrides}
        tops[name] = replace(top, topics=topics, provider=None)
    return replace(
        scenario,
        duration=dur,
        warmup=warmup,
        seed=scenario.seed if seed is None else seed,
        replications=1,
        provider=provider,
        workloads=tuple(scale_workload(w, rate_scale) for w in scenario.workloads),
        topologies=tops,
        faults=tuple(f for f in scenario.faults if f.start < dur),
    )


def simulate(scenario: Scenario, topology: str) -> RunResult:
    """Replication 0 of `topology` (the streams the live run drew), in this process."""
    doc = run_scenario(scenario, replications=1, topologies=[topology], workers=1)
    return doc.runs[topology]


def live_result(scenario: Scenario, run: LiveRun) -> RunResult:
    """A live run as a `RunResult` (one replication; engine ``live``)."""
    agg = aggregate([run.measures])
    sim_like = RunResult(
        topology=run.topology, provider=run.provider, engine="live", replications=(0,),
        flows=agg.flows, services=agg.services, topics=agg.topics,
        read_models=agg.read_models, backlog=agg.backlog, faults=agg.faults,
        cost=Cost(topics=dict.fromkeys(agg.topics, 0.0), total=0.0),
    )  # fmt: skip
    return replace(sim_like, overload=overloads(agg))


def relative_error(simulated: float | None, live: float | None) -> float | None:
    """(live - simulated) / simulated; None when either is undefined or simulated is 0."""
    if simulated is None or live is None or not math.isfinite(simulated) or not math.isfinite(live):
        return None
    if simulated == 0:
        return None
    return (live - simulated) / abs(simulated)


def _value(stat: Summary) -> float | None:
    return None if stat.mean is None or not math.isfinite(stat.mean) else stat.mean


def _series_mean(values: Sequence[float | None], t: Sequence[float], warmup: float) -> float | None:
    xs = [v for v, ti in zip(values, t, strict=False) if v is not None and ti >= warmup]
    return sum(xs) / len(xs) if xs else None


def figures(run: RunResult, warmup: float) -> dict[str, float | None]:
    """The compared figures of one run, by metric path."""
    out: dict[str, float | None] = {}
    for flow, f in run.flows.items():
        for part in ("latency", "completion"):
            q = getattr(f, part)
            for name in QUANTS:
                out[f"flows.{flow}.{part}.{name}"] = _value(getattr(q, name))
        out[f"flows.{flow}.throughput"] = _value(f.throughput)
        out[f"flows.{flow}.success_rate"] = _value(f.success_rate)
    for name, s in run.services.items():
        out[f"services.{name}.utilisation"] = _value(s.utilisation)
    for name, r in run.read_models.items():
        for q in QUANTS:
            out[f"read_models.{name}.window.{q}"] = _value(getattr(r.window, q))
    out["backlog.in_flight.mean"] = _series_mean(run.backlog.in_flight.mean, run.backlog.t, warmup)
    return out


def rows(simulated: RunResult, live: RunResult, warmup: float) -> tuple[Row, ...]:
    """One row per figure either side has, in the simulated run's order."""
    sim, liv = figures(simulated, warmup), figures(live, warmup)
    keys = list(dict.fromkeys([*sim, *liv]))
    return tuple(
        Row(k, sim.get(k), liv.get(k), relative_error(sim.get(k), liv.get(k))) for k in keys
    )


def compare(
    scenario: Scenario, run: LiveRun, *, rate_scale: float = 1.0, profile: str | None = None,
    simulated: RunResult | None = None,
) -> Comparison:  # fmt: skip
    """Simulate the prepared `scenario` (unless given) and set it beside the live `run`."""
    sim = simulated if simulated is not None else simulate(scenario, run.topology)
    live = live_result(scenario, run)
    return Comparison(
        scenario=scenario.name, file=scenario.file, topology=run.topology,
        provider=scenario.provider, transport=run.transport, seed=scenario.seed,
        duration=scenario.duration, warmup=scenario.warmup, rate_scale=rate_scale,
        sleep_bias=run.sleep_bias, wall_seconds=run.wall_seconds,
        rows=rows(sim, live, scenario.warmup), simulated=sim, live=live, profile=profile,
    )  # fmt: skip
