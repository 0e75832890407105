"""The App runtime's throughput for I/O-bound handlers, async against sync, side by side.

Each path consumes the same pre-published backlog on the embedded memory bus:

- async: ``async def handle(event): await asyncio.sleep(SLEEP)`` with concurrency C
- sync:  ``def handle(event): time.sleep(SLEEP)`` with concurrency C (thread pool)
- sequential baseline: one handler at a time (concurrency 1, sync), on a smaller backlog

Throughput is events / (time from start of consumption to the last ack).
The ideal for concurrency C is C / SLEEP events/s (2,000/s for 200 x 100 ms).
Issue 15's target: async with concurrency 200 and 100 ms sleeps sustains at
least 1,500 events/s.

    python bench/bench_app.py [--events N] [--concurrency C] [--sleep S] [--rounds R]
    python bench/bench_app.py --sweep      # throughput against concurrency, memory and durable

`--sweep` (issue 14): async handlers sleeping 10 ms at concurrency 1, 4, 16, 64
and 256 on the memory bus and on the durable (SQLite) bus, 2,000 events each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import iot_events, machine
from polybus import App
from polybus.adapters.local.durable import DurableBus
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus


def run_once(
    kind: str, events: list[Any], concurrency: int, sleep: float, adapter: Any = None
) -> float:
    """Events per second for one path over `events` (on `adapter`, the memory bus by default)."""
    app = App(f"bench-{kind}")
    loop: asyncio.AbstractEventLoop | None = None
    done = 0
    finished = asyncio.Event()

    def count() -> None:
        nonlocal done
        done += 1
        if done == len(events) and loop is not None:
            loop.call_soon_threadsafe(finished.set)

    if kind == "async":

        @app.subscriber("s", topic="t", concurrency=concurrency)
        async def handle_async(event: Any) -> None:
            await asyncio.sleep(sleep)
            count()

    else:

        @app.subscriber("s", topic="t", concurrency=concurrency)
        def handle_sync(event: Any) -> None:
            time.sleep(sleep)
            count()

    async def main() -> float:
        nonlocal loop
        loop = asyncio.get_running_loop()
        bus = Bus(adapter if adapter is not None else MemoryBus(retention=10))
        bus.subscribe("s", lambda e: None, topic="t")  # provision before publishing
        bus.publish(events, "t")
        started = time.perf_counter()
        await app.start(bus=bus)
        await finished.wait()
        elapsed = time.perf_counter() - started
        await app.stop()
        return len(events) / elapsed

    return asyncio.run(main())


def sweep(events: list[Any], sleep: float = 0.01) -> None:
    """Throughput against concurrency on the memory and the durable bus, side by side."""
    levels = (1, 4, 16, 64, 256)
    print(machine())
    print(f"{len(events)} events, async handlers sleep {sleep * 1000:g} ms")
    print(f"{'concurrency':>12}{'ideal/s':>10}{'memory/s':>11}{'durable/s':>11}")
    for level in levels:
        ideal = level / sleep
        memory = run_once("async", events, level, sleep)
        with tempfile.TemporaryDirectory() as folder:
            durable = run_once("async", events, level, sleep, DurableBus(Path(folder) / "bench.db"))
        print(f"{level:>12}{ideal:>10,.0f}{memory:>11,.0f}{durable:>11,.0f}")


def main() -> None:
    """Print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="throughput against concurrency")
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.sweep:
        sweep(iot_events(2000))
        return
    events = iot_events(args.events)
    rates: dict[str, list[float]] = {"async": [], "sync": [], "sequential": []}
    for _ in range(args.rounds):
        rates["async"].append(run_once("async", events, args.concurrency, args.sleep))
        rates["sync"].append(run_once("sync", events, args.concurrency, args.sleep))
        rates["sequential"].append(run_once("sync", events[:20], 1, args.sleep))
    ideal = args.concurrency / args.sleep
    print(machine())
    print(
        f"{args.events} events, handlers sleep {args.sleep * 1000:g} ms, concurrency {args.concurrency}; "
        f"ideal {ideal:,.0f}/s; median of {args.rounds} rounds (min-max)"
    )
    print(f"{'path':<12}{'events/s':>12}{'of ideal':>10}{'x sequential':>14}   range")
    base = statistics.median(rates["sequential"])
    for path, values in rates.items():
        med = statistics.median(values)
        of_ideal = med / (ideal if path != "sequential" else 1 / args.sleep)
        print(
            f"{path:<12}{med:>12,.0f}{of_ideal:>10.0%}{med / base:>14.1f}   {min(values):,.0f}-{max(values):,.0f}"
        )


if __name__ == "__main__":
    main()
