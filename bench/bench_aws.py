"""EventBridge publish throughput on moto's server: raw boto3 put_events vs the aws adapter.

moto runs in a child process (so it does not share this process's GIL); this
process drives real boto3 over loopback. Each round publishes the same
pre-built CloudEvents three ways to the same custom bus:

- raw boto3, entries built beforehand (put_events, 10 per call): the baseline
- raw boto3, entries built inside the timed loop (polybus.core.formats.to_json per event)
- the adapter: AwsAdapter.publish(topic, events) (mapping, sizing, batching, retries)

The paths take turns on the same 100-event slices (rotating which goes
first), so load from other processes hits all of them alike; the table gives
each path's events/s over the whole run and the adapter's overhead as the
median, over slices, of its time against the baseline's. The bus has no rules and no archive, so the figures
measure PutEvents and the client, not moto's rule matching or SQS.

    python bench/bench_aws.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from bench.common import iot_events, machine  # noqa: E402
from polybus.adapters.aws.mapping import to_entry  # noqa: E402
from polybus.adapters.aws.plugin import make_adapter  # noqa: E402
from polybus.core.formats import to_json  # noqa: E402

BATCH = 10
SLICE = 100  # events per timed slice (10 PutEvents calls)
TOPIC = "bench"
CHILD = (
    "import json, sys\n"
    "from polybus.adapters.aws.emulator import start\n"
    "emu = start()\n"
    "print(json.dumps(emu.settings()), flush=True)\n"
    "sys.stdin.read()\n"
    "emu.stop()\n"
)
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _events(n: int) -> list[Any]:
    return iot_events(n, extensions=lambda i: {"partitionkey": f"d{i % 1000}"})


def _timed(run: Callable[[int, int], None], lo: int, hi: int) -> float:
    start = time.perf_counter()
    run(lo, hi)
    return time.perf_counter() - start


def main() -> None:
    """Run the rounds and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(DUMMY_ENV)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        settings = json.loads(child.stdout.readline())
        _run(settings, args.events, args.rounds)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def _run(settings: dict[str, str], n: int, rounds: int) -> None:
    # No archive: moto's archive rule makes every PutEvents ~8x slower for all
    # paths alike, which would hide the client-side cost being measured.
    adapter = make_adapter({**settings, "archive": False})
    raw = boto3.session.Session(region_name=settings["region"]).client(
        "events", endpoint_url=settings["endpoint_url"]
    )
    events = _events(n)
    adapter.publish(TOPIC, events[:1])  # creates the bus
    bus = f"polybus-{TOPIC}"
    prebuilt = [to_entry(e, bus).request for e in events]

    def raw_prebuilt(lo: int, hi: int) -> None:
        for i in range(lo, hi, BATCH):
            answer = raw.put_events(Entries=prebuilt[i : min(hi, i + BATCH)])
            assert answer["FailedEntryCount"] == 0

    def raw_building(lo: int, hi: int) -> None:
        for i in range(lo, hi, BATCH):
            entries = [
                {
                    "Source": e.get_source(),
                    "DetailType": e.get_type(),
                    "Time": e.get_time(),
                    "Detail": to_json(e).decode(),
                    "EventBusName": bus,
                }
                for e in events[i : min(hi, i + BATCH)]
            ]
            answer = raw.put_events(Entries=entries)
            assert answer["FailedEntryCount"] == 0

    def through_adapter(lo: int, hi: int) -> None:
        adapter.publish(TOPIC, events[lo:hi])

    baseline_name, adapter_name = (
        "raw boto3 put_events, entries prebuilt (baseline)",
        "adapter.publish",
    )
    runs: dict[str, Callable[[int, int], None]] = {
        baseline_name: raw_prebuilt,
        "raw boto3 put_events, entries built in the loop": raw_building,
        adapter_name: through_adapter,
    }
    for run in runs.values():  # warm up connections and code paths
        run(0, SLICE)
    # The machine is shared: run the paths on the same slice of events one
    # after another (rotating who goes first) so load changes hit all alike.
    totals = dict.fromkeys(runs, 0.0)
    ratios: list[float] = []
    names = list(runs)
    for r in range(rounds):
        for k, lo in enumerate(range(0, n, SLICE)):
            hi = min(n, lo + SLICE)
            took: dict[str, float] = {}
            shift = (r + k) % len(names)
            for name in names[shift:] + names[:shift]:
                took[name] = _timed(runs[name], lo, hi)
                totals[name] += took[name]
            ratios.append(took[adapter_name] / took[baseline_name])
    overhead = (statistics.median(ratios) - 1) * 100
    print(f"EventBridge publish on moto — {n} events x {rounds} rounds, {SLICE}-event slices")
    print(f"machine: {machine()}")
    print()
    print("| path | events/s | time vs baseline (median of slices) |")
    print("|---|---:|---:|")
    for name, total in totals.items():
        cell = f"{overhead:+.1f}%" if name == adapter_name else ""
        print(f"| {name} | {n * rounds / total:,.0f} | {cell} |")
    adapter.close()
    raw.close()


if __name__ == "__main__":
    main()
