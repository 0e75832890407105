"""Pub/Sub throughput through the polybus emulator: the raw google-cloud-pubsub client vs the adapter.

The emulator runs in a child process (so it does not share this process's
GIL); this process drives the real client. Each scenario runs the raw client
and the adapter alternately on the same events (the raw client gets them
pre-encoded exactly as the adapter's binary mode encodes them), `--rounds`
times, and reports the best round of each (messages/s), the adapter's
overhead, and how busy the emulator was (its CPU seconds per wall second: below
1.0 it was not the bottleneck):

- publish, batches of 100 awaited one after another (what Adapter.publish does)
- publish, everything then await (the client's own ceiling; raw only)
- streaming pull: raw subscribe() callback + ack vs adapter receive(100) + ack

    python bench/bench_gcp.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from google.cloud import pubsub_v1  # noqa: E402

from bench.common import iot_events, machine, start_child  # noqa: E402
from polybus.adapters.gcp.config import GcpConfig  # noqa: E402
from polybus.adapters.gcp.mapping import to_message  # noqa: E402
from polybus.adapters.gcp.plugin import make_adapter  # noqa: E402
from polybus.core.contract import SubscriptionSpec  # noqa: E402

BATCH = 100
PROJECT = "polybus-bench"
CHILD = (
    "import sys\n"
    "from polybus.adapters.gcp.emulator import start\n"
    "emu = start()\n"
    "print(emu.endpoint, flush=True)\n"
    "sys.stdin.read()\n"
    "emu.stop()\n"
)


def _events(n: int) -> list[Any]:
    return iot_events(n, extensions=lambda i: {"tenant": "t1"})


def _handle(event: Any) -> None:
    """What a consumer does at least: look at the event."""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    """Raw clients and adapters against one emulator; fresh topics per round."""

    def __init__(self, endpoint: str, child_pid: int, events: list[Any]) -> None:
        self.endpoint = endpoint
        self.child_pid = child_pid
        self.events = events
        self.wire = [to_message(e) for e in events]  # what a raw-client user would have built
        os.environ["PUBSUB_EMULATOR_HOST"] = endpoint  # for the raw clients only
        defaults = GcpConfig()
        self.batch = pubsub_v1.types.BatchSettings(
            max_messages=defaults.batch_max_messages,
            max_bytes=defaults.batch_max_bytes,
            max_latency=defaults.batch_max_latency,
        )
        self.publisher = pubsub_v1.PublisherClient(batch_settings=self.batch)
        self.subscriber = pubsub_v1.SubscriberClient()
        self.emulator_busy: dict[str, float] = {}

    def timed(self, label: str, n: int, fn: Callable[[], None]) -> float:
        """Messages per second of `fn`; records the emulator's CPU share under `label`."""
        cpu = _cpu_seconds(self.child_pid)
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        busy = (_cpu_seconds(self.child_pid) - cpu) / elapsed
        self.emulator_busy[label] = max(self.emulator_busy.get(label, 0.0), busy)
        return n / elapsed

    def topic(self) -> tuple[str, str]:
        """A fresh portable topic and subscription name."""
        suffix = uuid.uuid4().hex[:8]
        return f"bench-{suffix}", f"sub-{suffix}"

    def _path(self, topic: str) -> str:
        return f"projects/{PROJECT}/topics/{topic}"

    def _warm(self, topic: str) -> None:
        data, attributes = self.wire[0]
        self.publisher.publish(self._path(topic), data, **attributes).result()

    def raw_publish_batches(self) -> float:
        topic, _ = self.topic()
        self.publisher.create_topic(name=self._path(topic))
        self._warm(topic)
        path = self._path(topic)

        def run() -> None:
            for start in range(0, len(self.wire), BATCH):
                futures = [
                    self.publisher.publish(path, data, **attrs)
                    for data, attrs in self.wire[start : start + BATCH]
                ]
                for future in futures:
                    future.result()

        return self.timed("raw publish", len(self.wire), run)

    def raw_publish_all(self) -> float:
        topic, _ = self.topic()
        self.publisher.create_topic(name=self._path(topic))
        self._warm(topic)
        path = self._path(topic)

        def run() -> None:
            futures = [self.publisher.publish(path, data, **attrs) for data, attrs in self.wire]
            for future in futures:
                future.result()

        return self.timed("raw publish all", len(self.wire), run)

    def adapter_publish(self) -> float:
        topic, _ = self.topic()
        adapter = self._adapter()
        adapter.publish(topic, self.events[:1])  # warm-up: topic and channel set up
        events = self.events

        def run() -> None:
            for start in range(0, len(events), BATCH):
                adapter.publish(topic, events[start : start + BATCH])

        try:
            return self.timed("adapter publish", len(events), run)
        finally:
            adapter.close()

    def _filled(self) -> tuple[str, str]:
        """A topic with a provisioned subscription holding every event (published raw)."""
        topic, sub = self.topic()
        adapter = self._adapter()
        adapter.provision(SubscriptionSpec(sub, topic))
        adapter.close()
        path = self._path(topic)
        futures = [self.publisher.publish(path, data, **attrs) for data, attrs in self.wire]
        for future in futures:
            future.result()
        return topic, sub

    def raw_receive(self) -> float:
        _, sub = self._filled()
        path = f"projects/{PROJECT}/subscriptions/{sub}"
        done = threading.Event()
        count = [0]
        lock = threading.Lock()
        total = len(self.wire)

        def callback(message: Any) -> None:
            _handle(message.data)
            message.ack()
            with lock:
                count[0] += 1
                if count[0] >= total:
                    done.set()

        def run() -> None:
            future = self.subscriber.subscribe(path, callback)
            done.wait(120)
            future.cancel()
            future.result()

        return self.timed("raw receive", total, run)

    def adapter_receive(self) -> float:
        _, sub = self._filled()
        adapter = self._adapter()
        total = len(self.events)

        def run() -> None:
            left = total
            while left:
                got = adapter.receive(sub, BATCH, 10.0)
                for delivery in got:
                    _handle(delivery.event)
                    delivery.ack()
                left -= len(got)
            adapter.close()  # ends the stream and flushes the acks, as raw does

        return self.timed("adapter receive", total, run)

    def _adapter(self) -> Any:
        return make_adapter({"project": PROJECT, "emulator_host": self.endpoint})

    def close(self) -> None:
        """Shut the raw clients down (before the emulator stops)."""
        self.subscriber.close()
        self.publisher.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    child, endpoint = start_child(CHILD, REPO)
    try:
        bench = Bench(endpoint, child.pid, _events(args.events))
        scenarios: list[tuple[str, Callable[[], float], Callable[[], float] | None, str]] = [
            (
                "publish, batches of 100",
                bench.raw_publish_batches,
                bench.adapter_publish,
                "publish",
            ),
            (
                "publish, all then await (client ceiling)",
                bench.raw_publish_all,
                None,
                "publish all",
            ),
            ("streaming pull + ack", bench.raw_receive, bench.adapter_receive, "receive"),
        ]
        rows = []
        for title, raw, adapted, label in scenarios:
            raw_best, adapter_best = 0.0, 0.0
            for _ in range(args.rounds):
                raw_best = max(raw_best, raw())
                if adapted is not None:
                    adapter_best = max(adapter_best, adapted())
            rows.append((title, raw_best, adapter_best, label))
        bench.close()
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    print(
        f"{args.events} messages, best of {args.rounds} rounds; emulator in a child process; "
        f"{machine()}\n"
    )
    print(
        "| scenario | raw client (msg/s) | adapter (msg/s) | adapter overhead "
        "| emulator CPU (raw / adapter) |"
    )
    print("|---|---:|---:|---:|---:|")
    busy = bench.emulator_busy
    for title, raw_rate, adapter_rate, label in rows:
        raw_busy = busy.get(f"raw {label}", 0.0)
        if adapter_rate:
            overhead = f"{(raw_rate / adapter_rate - 1) * 100:+.1f}%"
            adapter_busy = busy.get(f"adapter {label}", 0.0)
            print(
                f"| {title} | {raw_rate:,.0f} | {adapter_rate:,.0f} | {overhead} "
                f"| {raw_busy:.2f} / {adapter_busy:.2f} |"
            )
        else:
            print(f"| {title} | {raw_rate:,.0f} | - | - | {raw_busy:.2f} / - |")


if __name__ == "__main__":
    main()
