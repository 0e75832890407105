"""Run replication tasks on a Dask distributed cluster (``sim sweep --scheduler tcp://HOST:PORT``).

Each task is the same pure function as on the local process pool
(`polybus.sim.executors.run_task`), so a scenario scales out without changing
it, and results are identical to a local run on the same seeds. Needs the
``sim`` extra (dask[distributed]) on the client and on every worker; callers
check `DASK` before any simulation starts, so a missing extra is one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from polybus.core.extras import Requirement
from polybus.sim.executors import Outcome, Task, run_task
from polybus.sim.topology import Scenario

DASK = Requirement("sim sweep --scheduler (a Dask cluster)", ("distributed", "dask"), "sim")


@dataclass(frozen=True)
class DaskExecutor:
    """Submits every task to the scheduler at `address` and yields outcomes as they complete."""

    address: str

    def run(self, scenario: Scenario, tasks: Sequence[Task], seed: int) -> Iterator[Outcome]:
        """Yield outcomes as the cluster finishes them; closing the iterator cancels the rest."""
        DASK.check()
        from distributed import Client, as_completed

        with Client(self.address) as client:
            futures = [client.submit(run_task, scenario, task, seed, pure=False) for task in tasks]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            except BaseException:
                client.cancel(futures)
                raise
