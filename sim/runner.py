"""Replications on an executor, aggregated into a typed `RunDocument` (wire format ``polybus.sim/1``).

Each task is one replication of one topology (under one provider). All tasks
of replication r share the seed pair (seed, r), so topologies and providers
are compared under common random numbers. Tasks run on an `Executor`: this
process, a process pool whose workers ignore SIGINT, or a Dask cluster; on
Ctrl-C the runner stops the executor and reports what completed. A run whose
figures are not steady-state (a station offered at least its capacity, or
flows in progress growing through the second half) carries `Overload` flags.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence

from polybus.core.errors import ConfigError, Problem
from polybus.sim.broker import load_profile, monthly_cost
from polybus.sim.executors import (
    Executor,
    InlineExecutor,
    PoolExecutor,
    Task,
    engine_for,
    run_task,
)
from polybus.sim.metrics import aggregate
from polybus.sim.results import (
    SCHEMA,
    Aggregate,
    Cost,
    Overload,
    Replication,
    RunDocument,
    RunResult,
)
from polybus.sim.topology import Scenario

__all__ = ["SCHEMA", "Progress", "Task", "build_document", "engine_for", "run_scenario", "run_task"]

Progress = Callable[[int, int], None]


def _uses_broker(scenario: Scenario, topology: str) -> bool:
    """Whether the topology has topics (only then does the provider change anything)."""
    top = scenario.topologies[topology]
    return bool(top.topics) or any(s.publishes for s in top.services.values())


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    replications: int | None = None,
    topologies: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    scheduler: str | None = None,
    executor: Executor | None = None,
) -> RunDocument:
    """Run every (topology, provider, replication) task and aggregate per run.

    The executor is `executor` if given; else a Dask cluster at `scheduler`
    (``tcp://host:port``); else `workers` processes (default: CPU count, at
    most the number of tasks), 1 meaning this process. `progress(done,
    total)` is called after each task.
    """
    seed = scenario.seed if seed is None else seed
    reps = replications or scenario.replications
    tops = list(topologies or scenario.topologies)
    provs: list[str | None] = list(providers) if providers else [None]
    unknown = [
        Problem("topology", t, f"must be one of {', '.join(scenario.topologies)}")
        for t in tops
        if t not in scenario.topologies
    ]
    if unknown:
        raise ConfigError(scenario.file, unknown)
    for p in provs:
        if p is not None:
            load_profile(p)  # an unknown provider fails here, not inside a worker
    tasks = [
        Task(t, r, p if _uses_broker(scenario, t) else None)
        for r in range(reps)
        for t in tops
        for p in (provs if _uses_broker(scenario, t) else [None])
    ]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    if executor is None:
        if scheduler is not None:
            from polybus.sim.dask_backend import DaskExecutor

            executor = DaskExecutor(scheduler)
        else:
            executor = InlineExecutor() if n_workers == 1 else PoolExecutor(n_workers)
    results: dict[Task, Replication] = {}
    interrupted = False
    started = time.perf_counter()
    try:
        with contextlib.closing(executor.run(scenario, tasks, seed)) as outcomes:  # type: ignore[type-var]
            for outcome in outcomes:
                results[outcome.task] = outcome.result
                if progress:
                    progress(len(results), len(tasks))
    except KeyboardInterrupt:
        interrupted = True
    return build_document(
        scenario, seed, reps, tasks, results, interrupted, time.perf_counter() - started, n_workers
    )


def build_document(
    scenario: Scenario,
    seed: int,
    reps: int,
    tasks: Sequence[Task],
    results: dict[Task, Replication],
    interrupted: bool,
    wall: float,
    workers: int,
) -> RunDocument:
    """The typed document (schema ``polybus.sim/1``, see docs/sim.md)."""
    runs: dict[str, RunResult] = {}
    for key in dict.fromkeys(t.key for t in tasks):
        mine = sorted((t for t in results if t.key == key), key=lambda t: t.replication)
        if not mine:
            continue
        agg = aggregate([results[t] for t in mine])
        first = mine[0]
        provider = (
            first.provider or scenario.topologies[first.topology].provider or scenario.provider
        )
        runs[key] = RunResult(
            topology=first.topology,
            provider=provider,
            engine=engine_for(scenario, first.topology, first.provider),
            replications=tuple(t.replication for t in mine),
            flows=agg.flows,
            services=agg.services,
            topics=agg.topics,
            read_models=agg.read_models,
            backlog=agg.backlog,
            faults=agg.faults,
            cost=_cost(scenario, first.topology, provider, agg),
            overload=overloads(agg),
            hosts=agg.hosts,
        )
    by_rep: dict[int, list[Task]] = {}
    for t in tasks:
        by_rep.setdefault(t.replication, []).append(t)
    completed = sum(all(t in results for t in group) for group in by_rep.values())
    return RunDocument(
        scenario=scenario.name,
        description=scenario.description,
        lesson=scenario.lesson,
        file=scenario.file,
        seed=seed,
        replications=reps,
        completed_replications=completed,
        tasks_total=len(tasks),
        tasks_completed=len(results),
        interrupted=interrupted,
        replication_seeds=tuple((seed, r) for r in range(reps)),
        duration=scenario.duration,
        warmup=scenario.warmup,
        workers=workers,
        wall_seconds=wall,
        runs=runs,
    )


NOT_STEADY = "response figures are not steady-state"


def overloads(agg: Aggregate) -> tuple[Overload, ...]:
    """Stations offered at least their capacity (mean over replications), and a growing backlog."""
    out = []
    for name, s in agg.services.items():
        offered = s.offered.value
        if offered >= s.capacity:
            out.append(
                Overload(
                    "offered load", name, offered, s.capacity,
                    f"{name} is overloaded: offered {offered:.1f}, capacity {s.capacity:.1f}: "
                    f"{NOT_STEADY}",
                )
            )  # fmt: skip
    for name, h in agg.hosts.items():
        offered = h.offered.value
        if offered >= h.cpus:
            out.append(
                Overload(
                    "offered load", f"host {name}", offered, h.cpus,
                    f"host {name} is overloaded: offered {offered:.1f} CPUs, capacity "
                    f"{h.cpus:.0f}: {NOT_STEADY}",
                )
            )  # fmt: skip
    growing = agg.backlog.growing.value
    if growing >= 0.5:
        series = [y for y in agg.backlog.in_flight.mean if y is not None]
        end = series[-1] if series else float("nan")
        out.append(
            Overload(
                "growing backlog", "flows in progress", None, None,
                f"flows in progress grew without bound through the second half of the run "
                f"({end:.0f} at the end): {NOT_STEADY}",
            )
        )  # fmt: skip
    return tuple(out)


def _cost(scenario: Scenario, topology: str, provider: str, agg: Aggregate) -> Cost:
    """Monthly broker cost of the simulated rates, per topic and in total (USD, 30-day month)."""
    top = scenario.topologies[topology]
    per_topic: dict[str, float] = {}
    for name, stats in agg.topics.items():
        overrides = dict(top.topics.get(name, {}))
        prov = overrides.pop("provider", provider)
        profile = load_profile(prov, overrides)
        per_topic[name] = monthly_cost(
            profile,
            stats.events_per_s.mean or 0.0,
            stats.deliveries_per_s.mean or 0.0,
            stats.requests_per_s.mean or 0.0,
        )
    return Cost(topics=per_topic, total=sum(per_topic.values()))
