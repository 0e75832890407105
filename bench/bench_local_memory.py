"""Memory (RSS) of the in-memory bus under an unthrottled publisher and a slow consumer.

Runs the same workload three times, each in its own child process so each RSS figure
is that process's own: unbounded (``max_pending`` huge, the behaviour before
issue 14), bounded by the default ``max_pending = 100000``, and by 1,000 (a
bound also caps latency: about max_pending / consumer rate). A publisher
thread publishes fresh telemetry events in batches of 100 through `Bus.publish`
as fast as it can; one consumer thread handles about 1,000 events/s (1 ms per
event). RSS is sampled every second; publish-to-handler latency is measured on
the handled events.

    python bench/bench_local_memory.py [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import machine  # noqa: E402

CHILD = """
import json, os, sys, threading, time
sys.path.insert(0, {repo!r})
from polybus.adapters import connect
from polybus.core.config import Config
from polybus.core.errors import AdapterError
from polybus.core.events import EventFactory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

seconds, max_pending = {seconds}, {max_pending}
bus = connect(Config("local", {{"local": {{"max_pending": max_pending}}}}))
latencies, handled = [], [0]

def handle(event):
    time.sleep(0.001)
    latencies.append(time.time() - event.get_data()["t"])
    handled[0] += 1

bus.subscribe("slow", handle)
ids = iter(range(10**9))
factory = EventFactory(id_factory=lambda: "e%d" % next(ids))
published, refused, stop = [0], [0], threading.Event()

def publish():
    while not stop.is_set():
        now = time.time()
        batch = [factory.new("com.iot.telemetry", "/d", {{"i": published[0] + k, "t": now}})
                 for k in range(100)]
        try:
            bus.publish(batch)
            published[0] += 100
        except AdapterError:
            refused[0] += 100

samples = [rss_mb()]
bus.start(concurrency=1)
threading.Thread(target=publish, daemon=True).start()
for _ in range(seconds):
    time.sleep(1)
    samples.append(rss_mb())
stop.set()
lat = sorted(latencies)
print(json.dumps({{
    "rss_mb": samples, "published": published[0], "refused": refused[0],
    "handled": handled[0], "pending": bus.adapter.backlog("slow"),
    "p50_s": lat[len(lat) // 2] if lat else None,
    "p99_s": lat[int(len(lat) * 0.99)] if lat else None,
}}))
os._exit(0)  # the publisher may be blocked on a full queue: do not wait for it
"""


def run(seconds: int, max_pending: int) -> dict[str, object]:
    """One child process's figures for `seconds` of unthrottled publishing."""
    code = CHILD.format(repo=str(REPO), seconds=seconds, max_pending=max_pending)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run both configurations and print them side by side."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "unbounded (before)": run(args.seconds, 10**12),
        "max_pending=100000 (default)": run(args.seconds, 100_000),
        "max_pending=1000": run(args.seconds, 1_000),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(machine())
    print(f"{args.seconds} s of unthrottled publishing (batches of 100), consumer 1 ms/event\n")
    names = list(results)
    print(f"{'t (s)':>9} | " + " | ".join(f"{n:>28}" for n in names))
    samples = [results[n]["rss_mb"] for n in names]
    for t in range(args.seconds + 1):
        row = " | ".join(f"{s[t]:>25.0f} MB" for s in samples)  # type: ignore[index]
        print(f"{t:>9} | {row}")
    for key in ("published", "handled", "pending", "refused", "p50_s", "p99_s"):
        cells = []
        for n in names:
            value = results[n][key]
            cells.append(f"{value:>28.2f}" if isinstance(value, float) else f"{value!s:>28}")
        print(f"{key:>9} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
