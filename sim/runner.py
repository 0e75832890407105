"""Replications in parallel processes, aggregated into the documented JSON document.

Each task is one replication of one topology (under one provider). All tasks
of replication r share the seed pair (seed, r), so topologies and providers
are compared under common random numbers. Workers ignore SIGINT; the parent
catches Ctrl-C, cancels what has not started and reports what completed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from polybus.core.errors import ConfigError, Problem
from polybus.sim.broker import load_profile, monthly_cost
from polybus.sim.engine import simulate
from polybus.sim.fastpath import fast_plan, simulate_fast
from polybus.sim.metrics import aggregate
from polybus.sim.topology import Scenario

SCHEMA = "polybus.sim/1"


@dataclass(frozen=True)
class Task:
    """One replication of one topology, optionally under a provider other than the scenario's."""

    topology: str
    replication: int
    provider: str | None = None

    @property
    def key(self) -> str:
        """The run's name in the output: ``topology`` or ``topology@provider``."""
        return self.topology if self.provider is None else f"{self.topology}@{self.provider}"


def engine_for(scenario: Scenario, topology: str, provider: str | None = None) -> str:
    """'fast' or 'simpy': the scenario's choice, or the fast engine whenever it applies."""
    if scenario.engine != "auto":
        return scenario.engine
    plan = fast_plan(scenario, scenario.topologies[topology], provider)
    return "simpy" if isinstance(plan, str) else "fast"


def run_task(scenario: Scenario, task: Task, seed: int) -> tuple[Task, dict[str, Any], float]:
    """Run one task; return it with its metrics and wall seconds."""
    start = time.perf_counter()
    engine = engine_for(scenario, task.topology, task.provider)
    fn = simulate_fast if engine == "fast" else simulate
    result = fn(scenario, task.topology, seed, task.replication, task.provider)
    return task, result, time.perf_counter() - start


def _uses_broker(scenario: Scenario, topology: str) -> bool:
    """Whether the topology has topics (only then does the provider change anything)."""
    top = scenario.topologies[topology]
    return bool(top.topics) or any(s.publishes for s in top.services.values())


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


Progress = Callable[[int, int], None]


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
) -> dict[str, Any]:
    """Run every (topology, provider, replication) task and aggregate per run.

    `workers` processes (default: CPU count, at most the number of tasks);
    1 runs in this process; `scheduler` (``tcp://host:port``) sends the tasks
    to a Dask cluster instead. `progress(done, total)` is called after each task.
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
    results: dict[Task, dict[str, Any]] = {}
    walls: list[float] = []
    interrupted = False
    started = time.perf_counter()
    try:
        if scheduler is not None:
            from polybus.sim.dask_backend import run_on_dask

            run_on_dask(scheduler, scenario, tasks, seed, results, walls, progress)
        elif n_workers == 1:
            for task in tasks:
                _, res, wall = run_task(scenario, task, seed)
                results[task] = res
                walls.append(wall)
                if progress:
                    progress(len(results), len(tasks))
        else:
            _run_pool(scenario, tasks, seed, n_workers, results, walls, progress)
    except KeyboardInterrupt:
        interrupted = True
    return build_document(
        scenario, seed, reps, tasks, results, interrupted, time.perf_counter() - started, n_workers
    )


def _run_star(args: tuple[Scenario, Task, int]) -> tuple[Task, dict[str, Any], float]:
    return run_task(*args)


def _run_pool(
    scenario: Scenario,
    tasks: list[Task],
    seed: int,
    n_workers: int,
    results: dict[Task, dict[str, Any]],
    walls: list[float],
    progress: Progress | None,
) -> None:
    """A multiprocessing pool: on Ctrl-C the workers are terminated at once (no waiting on them)."""
    pool = mp.get_context("fork").Pool(n_workers, initializer=_ignore_sigint)
    try:
        for task, res, wall in pool.imap_unordered(_run_star, [(scenario, t, seed) for t in tasks]):
            results[task] = res
            walls.append(wall)
            if progress:
                progress(len(results), len(tasks))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def build_document(
    scenario: Scenario,
    seed: int,
    reps: int,
    tasks: Sequence[Task],
    results: dict[Task, dict[str, Any]],
    interrupted: bool,
    wall: float,
    workers: int,
) -> dict[str, Any]:
    """The JSON document (schema ``polybus.sim/1``, see docs/sim.md)."""
    runs: dict[str, Any] = {}
    for key in dict.fromkeys(t.key for t in tasks):
        mine = sorted((t for t in results if t.key == key), key=lambda t: t.replication)
        if not mine:
            continue
        agg = aggregate([results[t] for t in mine])
        first = mine[0]
        provider = (
            first.provider or scenario.topologies[first.topology].provider or scenario.provider
        )
        runs[key] = {
            "topology": first.topology,
            "provider": provider,
            "engine": engine_for(scenario, first.topology, first.provider),
            "replications": [t.replication for t in mine],
            **agg,
            "cost": _cost(scenario, first.topology, provider, agg),
        }
    by_rep: dict[int, list[Task]] = {}
    for t in tasks:
        by_rep.setdefault(t.replication, []).append(t)
    completed = sum(all(t in results for t in group) for group in by_rep.values())
    return {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "file": scenario.file,
        "seed": seed,
        "replications": reps,
        "completed_replications": completed,
        "tasks_total": len(tasks),
        "tasks_completed": len(results),
        "interrupted": interrupted,
        "replication_seeds": [[seed, r] for r in range(reps)],
        "duration": scenario.duration,
        "warmup": scenario.warmup,
        "workers": workers,
        "wall_seconds": wall,
        "runs": runs,
    }


def _cost(scenario: Scenario, topology: str, provider: str, agg: dict[str, Any]) -> dict[str, Any]:
    """Monthly broker cost of the simulated rates, per topic and in total (USD, 30-day month)."""
    top = scenario.topologies[topology]
    per_topic: dict[str, float] = {}
    for name, stats in agg.get("topics", {}).items():
        overrides = dict(top.topics.get(name, {}))
        prov = overrides.pop("provider", provider)
        profile = load_profile(prov, overrides)
        per_topic[name] = monthly_cost(
            profile,
            stats["events_per_s"]["mean"] or 0.0,
            stats["deliveries_per_s"]["mean"] or 0.0,
            stats["requests_per_s"]["mean"] or 0.0,
        )
    return {
        "currency": "USD",
        "period": "30-day month",
        "topics": per_topic,
        "total": sum(per_topic.values()),
    }
