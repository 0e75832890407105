"""Run a scenario live against a real Bus and set it beside its simulation (``polybus sim live``).

The live run draws the same named random streams as the simulation (same
seed, replication 0): the same arrivals, the same service time for the n-th
visit of each service. Services are asyncio coroutines that hold a worker
(an asyncio semaphore, or the runtime's per-subscription concurrency) for the
drawn time; event topologies publish through one `polybus.app.App` on the
Bus the caller built, request topologies call each other over loopback HTTP.
What the live run measures fills the simulator's own `Recorder`, so both
sides' figures come from the same code (sim.metrics). sim.live imports no
adapter: the CLI connects the Bus and hands it over.
"""

from __future__ import annotations

from polybus.sim.live.compare import Comparison, Row, compare, prepare
from polybus.sim.live.run import LiveRun, run_live

__all__ = ["Comparison", "LiveRun", "Row", "compare", "prepare", "run_live"]
