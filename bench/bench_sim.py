"""Simulation harness benchmarks, each measured side by side with its baseline in one run.

    .venv/bin/python bench/bench_sim.py [--quick] [--json]

1. Harness overhead: the harness's SimPy engine on an M/M/1 scenario against a
   hand-written SimPy M/M/1 with the same number of customers (target <= 1.3x
   wall). Runs alternate (A B A B ...) and the medians are compared.
2. Scale: 1,000,000 devices reporting every 60 s for one simulated hour through
   a broker into a partitioned ingest tier (60M messages), in a child process so
   its peak RSS is its own (targets <= 60 s wall, <= 1 GB peak RSS).
3. Replications on 2 processes against 1 (target >= 1.7x faster).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import peak_rss_mb  # noqa: E402
from polybus.sim.loader import parse_scenario  # noqa: E402
from polybus.sim.runner import run_scenario  # noqa: E402

LAM, MU = 0.8, 1.0


def hand_written_mm1(customers: int, seed: int) -> int:
    """The textbook SimPy M/M/1 (source process + one process per customer); returns customers served."""
    rng = random.Random(seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    sojourns: list[float] = []

    def customer(env: simpy.Environment) -> Any:
        arrive = env.now
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(MU))
        sojourns.append(env.now - arrive)

    def source(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(rng.expovariate(LAM))
            env.process(customer(env))

    env.process(source(env))
    env.run(until=customers / LAM)
    return len(sojourns)


def harness_mm1(customers: int, seed: int) -> int:
    """The same M/M/1 through the harness (SimPy engine forced); returns customers counted."""
    from polybus.sim.engine import simulate

    sc = parse_scenario(
        {
            "name": "mm1",
            "engine": "simpy",
            "duration": customers / LAM,
            "warmup": 0.0,
            "sample_interval": 100.0,
            "workload": {"q": {"rate": LAM}},
            "topologies": {
                "one": {
                    "entry": {"q": "s"},
                    "services": {
                        "s": {"workers": 1, "service_time": {"dist": "exponential", "mean": 1 / MU}}
                    },
                }
            },
        }
    )
    return int(simulate(sc, "one", seed, 0).flows["q"].count)


def bench_overhead(customers: int, rounds: int) -> dict[str, Any]:
    hand, harness = [], []
    for r in range(rounds):
        t = time.perf_counter()
        hand_written_mm1(customers, r)
        hand.append(time.perf_counter() - t)
        t = time.perf_counter()
        harness_mm1(customers, r)
        harness.append(time.perf_counter() - t)
    h, s = statistics.median(hand), statistics.median(harness)
    return {
        "customers": customers,
        "rounds": rounds,
        "hand_written_s": h,
        "harness_s": s,
        "ratio": s / h,
        "target_ratio_max": 1.3,
        "customers_per_s_harness": customers / s,
    }


def _fleet_child(devices: int, hours: float, queue: Any) -> None:
    from polybus.sim.fastpath import simulate_fast

    sc = parse_scenario(
        {
            "name": "fleet",
            "duration": 3600.0 * hours,
            "warmup": 60.0,
            "provider": "local",
            "sample_interval": 10.0,
            "workload": {
                "telemetry": {
                    "pattern": "periodic",
                    "devices": devices,
                    "period": 60.0,
                    "jitter": 2.0,
                }
            },
            "topologies": {
                "ingest": {
                    "entry": {"telemetry": "readings"},
                    "services": {
                        "ingest": {
                            "workers": 1,
                            "partitions": 256,
                            "consumes": ["readings"],
                            "service_time": {"dist": "exponential", "mean": 0.012},
                        }
                    },
                    "topics": {"readings": {}},
                }
            },
        }
    )
    start = time.perf_counter()
    res = simulate_fast(sc, "ingest", 1, 0)
    wall = time.perf_counter() - start
    rss_mb = peak_rss_mb()
    queue.put(
        {
            "devices": devices,
            "simulated_s": 3600.0 * hours,
            "messages": int(res.topics["readings"].published),
            "wall_s": wall,
            "peak_rss_mb": rss_mb,
            "ingest_utilisation": res.services["ingest"].utilisation,
            "p99_completion_s": res.flows["telemetry"].completion.p99,
            "target_wall_s_max": 60.0,
            "target_rss_mb_max": 1024.0,
        }
    )


def bench_fleet(devices: int, hours: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # a fresh interpreter: peak RSS is the simulation's own
    queue = ctx.Queue()
    proc = ctx.Process(target=_fleet_child, args=(devices, hours, queue))
    proc.start()
    out: dict[str, Any] = queue.get()
    proc.join()
    return out


def bench_parallel(replications: int, duration: float) -> dict[str, Any]:
    sc = parse_scenario(
        {
            "name": "cpu-bound",
            "engine": "simpy",
            "duration": duration,
            "warmup": 10.0,
            "workload": {"q": {"rate": 50.0}},
            "topologies": {
                "one": {
                    "entry": {"q": "gw"},
                    "services": {
                        "gw": {
                            "workers": 8,
                            "service_time": {"dist": "exponential", "mean": 0.01},
                            "calls": [{"to": "db"}],
                        },
                        "db": {"workers": 2, "service_time": {"dist": "exponential", "mean": 0.02}},
                    },
                }
            },
        }
    )
    t = time.perf_counter()
    one = run_scenario(sc, replications=replications, workers=1)
    serial = time.perf_counter() - t
    t = time.perf_counter()
    two = run_scenario(sc, replications=replications, workers=2)
    parallel = time.perf_counter() - t
    assert one.runs == two.runs, "parallel replications must give the same numbers"
    return {
        "replications": replications,
        "one_process_s": serial,
        "two_processes_s": parallel,
        "speedup": serial / parallel,
        "target_speedup_min": 1.7,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="Smaller sizes (a smoke run, not the figures)."
    )
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    quick = args.quick
    figures = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "simpy": simpy.__version__ if hasattr(simpy, "__version__") else "4",
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "overhead": bench_overhead(20_000 if quick else 200_000, 2 if quick else 5),
        "fleet": bench_fleet(20_000 if quick else 1_000_000, 0.1 if quick else 1.0),
        "parallel": bench_parallel(4, 200.0 if quick else 2400.0),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    o, f, p = figures["overhead"], figures["fleet"], figures["parallel"]
    print(f"overhead: harness {o['harness_s']:.2f} s vs hand-written SimPy {o['hand_written_s']:.2f} s "
          f"for {o['customers']:,} customers: {o['ratio']:.2f}x (target <= 1.3x)")  # fmt: skip
    print(f"fleet:    {f['devices']:,} devices, {f['messages']:,} messages in {f['wall_s']:.1f} s wall, "
          f"peak RSS {f['peak_rss_mb']:.0f} MB (targets <= 60 s, <= 1024 MB)")  # fmt: skip
    print(f"parallel: {p['replications']} replications, 1 process {p['one_process_s']:.2f} s, "
          f"2 processes {p['two_processes_s']:.2f} s: {p['speedup']:.2f}x (target >= 1.7x)")  # fmt: skip


if __name__ == "__main__":
    main()
