"""Outbox relay latency and throughput on PostgreSQL and SQLite, against a plain publish.

Latency: writer threads (4 on PostgreSQL, one connection each; 1 on SQLite,
which has one writer at a time) commit one event per transaction at a fixed
overall rate (default 1,000 events/s for 5 s); the relay runs in a thread of the same
process (PostgreSQL: woken by LISTEN/NOTIFY only; SQLite: woken in-process,
polling every 50 ms otherwise) and publishes to the in-memory bus, whose
consumer thread records when each event arrives. Latency = arrival - commit
return. The baseline publishes the same events with `bus.publish` at the
same rate (latency = arrival - publish call start).

Throughput: N events are committed to the outbox first (1,000 per
transaction), then one relay publishes them all (`run_once`); events/s =
N / relay time. The baseline is `bus.publish` of the same events in batches
of 100. The PostgreSQL server is started from Debian's binaries as the test
fixture does (fsync off: the figures are the relay's, not the disk's).

    python bench/bench_outbox.py [--rate 1000] [--seconds 5] [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine  # noqa: E402
from polybus.adapters.local.memory import MemoryBus  # noqa: E402
from polybus.core.bus import Bus  # noqa: E402
from polybus.core.consistency.database import make_engine  # noqa: E402
from polybus.core.consistency.outbox import Outbox  # noqa: E402
from polybus.core.consistency.relay import Relay, RelaySettings  # noqa: E402
from polybus.core.events import EventFactory  # noqa: E402
from tests.fixtures.postgres import new_postgres_database, start_postgres  # noqa: E402


def _events(n: int, prefix: str) -> list[Any]:
    ids = iter(range(n))
    factory = EventFactory(id_factory=lambda: f"{prefix}{next(ids)}")
    return [
        factory.new("com.shop.order", "/shop", {"i": i, "total": 12.5}, extensions={"partitionkey": f"c{i % 100}"})
        for i in range(n)
    ]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


class Receiver:
    """A memory bus with one consumer thread recording arrival times by event id."""

    def __init__(self) -> None:
        self.bus = Bus(MemoryBus(max_pending=1_000_000), poll_timeout=0.05)
        self.arrived: dict[str, float] = {}
        self.bus.subscribe("bench", self._on, topic="orders")
        self.bus.start()

    def _on(self, event: Any) -> None:
        self.arrived[event.get_id()] = time.time()

    def wait(self, n: int, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while len(self.arrived) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.bus.close()


def _paced(n: int, rate: float, act: Any, writers: int = 1) -> None:
    """Call act(i) for i < n at `rate` per second overall, from `writers` threads."""
    start = time.perf_counter()

    def run(first: int) -> None:
        for i in range(first, n, writers):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            act(i)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def latency(url: str | None, rate: float, seconds: float, writers: int = 1) -> dict[str, Any]:
    """Commit -> arrival through the relay (url) or publish -> arrival (url None: baseline)."""
    n = int(rate * seconds)
    events = _events(n, "l")
    receiver = Receiver()
    sent: dict[str, float] = {}
    relay = None
    try:
        if url is None:

            def act(i: int) -> None:
                sent[events[i].get_id()] = time.time()
                receiver.bus.publish(events[i], topic="orders")

        else:
            engine = make_engine(url, pool_size=writers)
            outbox = Outbox(engine)
            relay = Relay(url, receiver.bus, RelaySettings(batch_size=200))
            relay.start()
            time.sleep(0.3)

            def act(i: int) -> None:
                with engine.begin() as conn, outbox.transaction(conn) as tx:
                    tx.publish(events[i], topic="orders")
                sent[events[i].get_id()] = time.time()

        began = time.perf_counter()
        _paced(n, rate, act, writers)
        achieved = n / (time.perf_counter() - began)
        receiver.wait(n)
    finally:
        if relay is not None:
            relay.stop()
        receiver.close()
    lat = [receiver.arrived[k] - t for k, t in sent.items() if k in receiver.arrived]
    return {
        "events": n,
        "received": len(lat),
        "writers": writers,
        "offered_rate": rate,
        "achieved_rate": round(achieved),
        **_percentiles(lat),
    }


def throughput(url: str | None, n: int) -> dict[str, Any]:
    """Events/s the relay publishes from a full outbox (url), or `bus.publish` in 100s (None)."""
    events = _events(n, "t")
    bus = Bus(MemoryBus(max_pending=n + 10))
    bus.subscribe("bench", lambda e: None, topic="orders")
    try:
        if url is None:
            began = time.perf_counter()
            for i in range(0, n, 100):
                bus.publish(events[i : i + 100], topic="orders")
            elapsed = time.perf_counter() - began
        else:
            engine = make_engine(url)
            outbox = Outbox(engine)
            for i in range(0, n, 1000):
                with engine.begin() as conn, outbox.transaction(conn) as tx:
                    tx.publish(events[i : i + 1000], topic="orders")
            engine.dispose()
            relay = Relay(url, bus, RelaySettings(batch_size=1000, publish_batch=100))
            began = time.perf_counter()
            published = relay.run_once()
            elapsed = time.perf_counter() - began
            relay.stop()
            assert published == n, (published, n)
    finally:
        bus.close()
    return {"events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed)}


def main() -> None:
    """Run every measurement and print a JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--writers", type=int, default=4, help="Writer threads on PostgreSQL.")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp, start_postgres() as server:
        pg = new_postgres_database(server)
        pg2 = new_postgres_database(server)
        lite = f"sqlite:///{Path(tmp) / 'lat.db'}"
        lite2 = f"sqlite:///{Path(tmp) / 'tput.db'}"
        results["latency"] = {
            "plain_publish": latency(None, args.rate, args.seconds),
            "relay_postgres": latency(pg, args.rate, args.seconds, args.writers),
            "relay_sqlite": latency(lite, args.rate, args.seconds, 1),
        }
        results["throughput"] = {
            "plain_publish": throughput(None, args.events),
            "relay_postgres": throughput(pg2, args.events),
            "relay_sqlite": throughput(lite2, args.events),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
