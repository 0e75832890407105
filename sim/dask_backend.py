"""Run replication tasks on a Dask distributed cluster (``sim sweep --scheduler tcp://HOST:PORT``).

Each task is the same pure function as on the local process pool
(`polybus.sim.runner.run_task`), so a scenario scales out without changing it, and
results are identical to a local run on the same seeds. Needs the ``sim``
extra (dask[distributed]) on the client and on every worker; callers check
`DASK` before any simulation starts, so a missing extra is one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from polybus.core.extras import Requirement
from polybus.sim.topology import Scenario

DASK = Requirement("sim sweep --scheduler (a Dask cluster)", ("distributed", "dask"), "sim")


def run_on_dask(
    address: str,
    scenario: Scenario,
    tasks: Sequence[Any],
    seed: int,
    results: dict[Any, dict[str, Any]],
    walls: list[float],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Submit every task to the scheduler at `address`; fill `results` as they complete."""
    DASK.check()
    from distributed import Client, as_completed

    from polybus.sim.runner import run_task

    with Client(address) as client:
        futures = [client.submit(run_task, scenario, task, seed, pure=False) for task in tasks]
        try:
            for fut in as_completed(futures):
                task, res, wall = fut.result()
                results[task] = res
                walls.append(wall)
                if progress:
                    progress(len(results), len(tasks))
        except KeyboardInterrupt:
            client.cancel(futures)
            raise
