"""Local bus throughput and latency, publish to handler, one filtered subscription.

Runs the in-memory and the SQLite-durable bus side by side in one process on
the same pre-built events. Events are published in batches of 100 while
consumer threads run; latency is handler time minus publish time per event.
Also measures the durable backlog's peak memory (1,000,000 unconsumed events
by default) in a child process, so the figure is that process's own peak RSS.

    python bench/bench_local.py [--events N] [--backlog N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import iot_events, machine  # noqa: E402
from polybus.adapters import connect  # noqa: E402
from polybus.core.config import Config  # noqa: E402


def _events(n: int) -> list:
    return iot_events(n, heartbeat_every=10)


def run(provider_settings: dict, events: list, batch: int = 100, rate: float = 0.0) -> dict:
    """Publish `events` in batches; `rate` > 0 paces publishing to that many events/s."""
    config = Config("local", {"local": provider_settings})
    bus = connect(config)
    n = len(events)
    expected = sum(1 for e in events if e.get_type() == "com.iot.telemetry")
    published = [0.0] * n
    latency: list[float] = []
    done = [0]
    clock = time.perf_counter

    def handler(event) -> None:  # type: ignore[no-untyped-def]
        latency.append(clock() - published[event.get_data()["i"]])
        done[0] += 1

    bus.subscribe("bench", handler, filter={"exact": {"type": "com.iot.telemetry"}})
    bus.start(concurrency=1)
    start = clock()
    for lo in range(0, n, batch):
        chunk = events[lo : lo + batch]
        if rate:
            wait = start + lo / rate - clock()
            if wait > 0:
                time.sleep(wait)
        now = clock()
        for i in range(lo, lo + len(chunk)):
            published[i] = now
        bus.publish(chunk)
    while done[0] < expected:
        time.sleep(0.001)
    elapsed = clock() - start
    bus.close()
    latency.sort()
    return {
        "events_per_s": n / elapsed,
        "delivered": done[0],
        "p50_ms": 1000 * latency[len(latency) // 2],
        "p99_ms": 1000 * latency[int(len(latency) * 0.99)],
    }


BACKLOG_CHILD = """
import sys
sys.path.insert(0, {repo!r})
from bench.common import peak_rss_mb
from polybus.adapters.local.durable import DurableBus
from polybus.core.contract import SubscriptionSpec
from polybus.core.events import EventFactory
ids = iter(range(10**9))
f = EventFactory(id_factory=lambda: "b%d" % next(ids))
bus = DurableBus({path!r})
bus.provision(SubscriptionSpec("waiting", "telemetry"))
n = {n}
for lo in range(0, n, 1000):
    bus.publish("telemetry", [f.new("com.iot.telemetry", "/d", {{"i": i, "t": 20.5}}) for i in range(lo, lo + 1000)])
print(bus.backlog("waiting"), peak_rss_mb())
bus.close()
"""


def backlog_peak(n: int) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        code = BACKLOG_CHILD.format(repo=str(REPO), path=str(Path(tmp) / "b.db"), n=n)
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        elapsed = time.perf_counter() - start
    backlog, rss_mb = out.stdout.split()
    return int(backlog), float(rss_mb), elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events = _events(args.events)
    results = {}
    paced = {}
    durable, compact = "durable (SQLite WAL)", "durable, Avro Compact rows"
    rates = {"memory": 20_000, durable: 5_000, compact: 5_000}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in (
            ("memory", {}),
            (durable, {"durable": True, "path": str(Path(tmp) / "bench.db")}),
            (
                compact,
                {
                    "durable": True,
                    "path": str(Path(tmp) / "compact.db"),
                    "event_format": "avro-compact",
                },
            ),
        ):
            results[name] = run(settings, events)
            if settings:  # the file's size with every event stored (WAL checkpointed on close)
                results[name]["file_mb"] = Path(settings["path"]).stat().st_size / 1e6
            settings = (
                {**settings, "path": str(Path(tmp) / f"paced{len(paced)}.db")} if settings else {}
            )
            paced[name] = run(settings, events[: rates[name] * 2], rate=rates[name])
    backlog, peak_mb, seconds = backlog_peak(args.backlog)
    if args.json:
        print(
            json.dumps({"results": results, "paced": paced, "backlog": [backlog, peak_mb, seconds]})
        )
        return
    print(f"machine: {machine()}; {args.events} events, 90% match the filter\n")
    print(
        "| bus | events/s published to handler | target "
        "| p50 / p99 latency at a paced load | file |"
    )
    print("| --- | ---: | --- | --- | ---: |")
    targets = {"memory": 100_000, durable: 20_000, compact: 20_000}
    for name, r in results.items():
        ok = "met" if r["events_per_s"] >= targets[name] else "NOT met"
        p = paced[name]
        size = f"{r['file_mb']:.0f} MB" if "file_mb" in r else ""
        print(
            f"| {name} | {r['events_per_s']:,.0f} | >= {targets[name]:,}/s: {ok} "
            f"| {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms at {rates[name]:,}/s | {size} |"
        )
    print(
        f"\ndurable backlog: {backlog:,} unconsumed events, publisher peak RSS {peak_mb:.0f} MB "
        f"(target < 200 MB), published in {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
