"""Where replication tasks run: one interface for this process, a process pool and a Dask cluster.

A task is one replication of one topology (under one provider); `run_task`
is the pure function every executor calls, so results are identical wherever
it runs. An executor yields each finished task's `Outcome` as it completes;
closing the iterator (Ctrl-C in the caller) stops what has not finished.
The runner depends on this module, and so does `sim.dask_backend`; neither
imports the other's internals, so there is no import cycle.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from polybus.sim.engine import simulate
from polybus.sim.fastpath import fast_plan, simulate_fast
from polybus.sim.results import Replication
from polybus.sim.topology import Scenario


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


@dataclass(frozen=True)
class Outcome:
    """A finished task: its measures and the wall seconds it took."""

    task: Task
    result: Replication
    wall: float


def engine_for(scenario: Scenario, topology: str, provider: str | None = None) -> str:
    """'fast' or 'simpy': the scenario's choice, or the fast engine whenever it applies."""
    if scenario.engine != "auto":
        return scenario.engine
    plan = fast_plan(scenario, scenario.topologies[topology], provider)
    return "simpy" if isinstance(plan, str) else "fast"


def run_task(scenario: Scenario, task: Task, seed: int) -> Outcome:
    """Run one task on the engine that applies."""
    start = time.perf_counter()
    engine = engine_for(scenario, task.topology, task.provider)
    fn = simulate_fast if engine == "fast" else simulate
    result = fn(scenario, task.topology, seed, task.replication, task.provider)
    return Outcome(task, result, time.perf_counter() - start)


class Executor(Protocol):
    """Runs tasks and yields their outcomes as they finish (in any order)."""

    def run(self, scenario: Scenario, tasks: Sequence[Task], seed: int) -> Iterator[Outcome]:
        """Yield one Outcome per task; closing the iterator cancels the rest."""
        ...


class InlineExecutor:
    """Runs every task in this process, in order (``workers=1``, notebooks, debugging)."""

    def run(self, scenario: Scenario, tasks: Sequence[Task], seed: int) -> Iterator[Outcome]:
        """Yield each task's outcome in turn."""
        for task in tasks:
            yield run_task(scenario, task, seed)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_star(args: tuple[Scenario, Task, int]) -> Outcome:
    return run_task(*args)


@dataclass(frozen=True)
class PoolExecutor:
    """A fork-based process pool; workers ignore SIGINT and are terminated at once when the caller stops."""

    workers: int

    def run(self, scenario: Scenario, tasks: Sequence[Task], seed: int) -> Iterator[Outcome]:
        """Yield outcomes as the workers finish them."""
        pool = mp.get_context("fork").Pool(self.workers, initializer=_ignore_sigint)
        try:
            yield from pool.imap_unordered(_run_star, [(scenario, t, seed) for t in tasks])
            pool.close()
        except BaseException:  # Ctrl-C or the caller closing the iterator: stop the workers now
            pool.terminate()
            raise
        finally:
            pool.join()
