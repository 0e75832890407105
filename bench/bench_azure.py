"""Event Grid throughput through the emulator: the raw azure-eventgrid SDK vs the adapter.

The emulator runs in a child process (so it does not share this process's
GIL); this process drives the real SDK. Each scenario runs the raw SDK and
the adapter alternately on the same pre-built events, `--rounds` times, and
reports the best round of each (events/s) and the adapter's overhead:

- basic-topic publish, batches of 100 (raw SDK only: the adapter defaults to namespaces)
- namespace publish, batches of 100
- namespace receive(100) + acknowledge

    python bench/bench_azure.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.messaging import CloudEvent as AzureCloudEvent  # noqa: E402
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient  # noqa: E402

from bench.common import iot_events, machine, start_child  # noqa: E402
from polybus.adapters.azure.mapping import to_wire  # noqa: E402
from polybus.adapters.azure.plugin import make_adapter  # noqa: E402
from polybus.adapters.azure.provisioning import EmulatorAdmin  # noqa: E402
from polybus.core.contract import SubscriptionSpec  # noqa: E402

BATCH = 100
CHILD = (
    "import json, sys, threading\n"
    "from polybus.adapters.azure.emulator import start\n"
    "emu = start()\n"
    "print(json.dumps({'endpoint': emu.endpoint, 'key': emu.key}), flush=True)\n"
    "sys.stdin.read()\n"
    "emu.stop()\n"
)


def _events(n: int) -> list[Any]:
    return iot_events(n, extensions=lambda i: {"tenant": "t1"})


def _rate(n: int, fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def _handle(event: Any) -> None:
    """What a consumer does at least: look at the event."""


def _batches(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


class Bench:
    """One emulator, one admin client, fresh topics per round."""

    def __init__(self, endpoint: str, key: str, events: list[Any]) -> None:
        self.endpoint, self.key = endpoint, key
        self.credential = AzureKeyCredential(key)
        self.admin = EmulatorAdmin(endpoint, key)
        self.events = events
        # what a raw-SDK user would have built: the SDK's own CloudEvent objects
        self.wire = [AzureCloudEvent.from_dict(to_wire(e)) for e in events]

    def topic(self, with_sub: bool = False) -> tuple[str, str]:
        topic, sub = f"bench-{uuid.uuid4().hex[:8]}", "sub"
        self.admin.put_namespace_topic(topic)
        if with_sub:
            self.admin.put_pull_subscription(topic, sub)
        return topic, sub

    def raw_basic_publish(self) -> float:
        topic = f"basic-{uuid.uuid4().hex[:8]}"
        url = self.admin.put_basic_topic(topic)
        with EventGridPublisherClient(url, self.credential) as client:
            client.send(self.wire[:1])  # warm-up: connection set up outside the timing
            return _rate(len(self.wire), lambda: [client.send(b) for b in _batches(self.wire)])

    def raw_publish(self) -> float:
        topic, _ = self.topic()
        with EventGridPublisherClient(
            self.endpoint, self.credential, namespace_topic=topic
        ) as client:
            client.send(self.wire[:1])  # warm-up
            return _rate(len(self.wire), lambda: [client.send(b) for b in _batches(self.wire)])

    def adapter_publish(self) -> float:
        topic, _ = self.topic()
        adapter = self._adapter()
        adapter.publish(topic, self.events[:1])  # warm-up
        try:
            return _rate(
                len(self.events), lambda: [adapter.publish(topic, b) for b in _batches(self.events)]
            )
        finally:
            adapter.close()

    def raw_receive(self) -> float:
        topic, sub = self._filled()
        with EventGridConsumerClient(
            self.endpoint, self.credential, namespace_topic=topic, subscription=sub
        ) as client:

            def run() -> None:
                left = len(self.events)
                while left:
                    got = client.receive(max_events=BATCH, max_wait_time=10)
                    for detail in got:
                        _handle(detail["event"])
                    client.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])
                    left -= len(got)

            return _rate(len(self.events), run)

    def adapter_receive(self) -> float:
        topic, sub = self._filled()
        adapter = self._adapter()
        adapter.provision(SubscriptionSpec(sub, topic))  # same settings: idempotent update

        def run() -> None:
            left = len(self.events)
            while left:
                got = adapter.receive(sub, BATCH, 10.0)
                for delivery in got:
                    _handle(delivery.event)
                    delivery.ack()
                left -= len(got)
            adapter.receive(sub, 1, 0.0)  # flushes the last acks

        try:
            return _rate(len(self.events), run)
        finally:
            adapter.close()

    def _filled(self) -> tuple[str, str]:
        topic, sub = self.topic(with_sub=True)
        with EventGridPublisherClient(
            self.endpoint, self.credential, namespace_topic=topic
        ) as client:
            for batch in _batches(self.wire):
                client.send(batch)
        return topic, sub

    def _adapter(self) -> Any:
        return make_adapter({"endpoint": self.endpoint, "key": self.key, "admin": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    child, first = start_child(CHILD, REPO)
    info = json.loads(first)
    try:
        bench = Bench(info["endpoint"], info["key"], _events(args.events))
        scenarios: list[tuple[str, Callable[[], float], Callable[[], float] | None]] = [
            ("basic-topic publish, batches of 100", bench.raw_basic_publish, None),
            ("namespace publish, batches of 100", bench.raw_publish, bench.adapter_publish),
            ("namespace receive(100) + acknowledge", bench.raw_receive, bench.adapter_receive),
        ]
        rows = []
        for title, raw, adapted in scenarios:
            raw_best, adapter_best = 0.0, 0.0
            for _ in range(args.rounds):
                raw_best = max(raw_best, raw())
                if adapted is not None:
                    adapter_best = max(adapter_best, adapted())
            rows.append((title, raw_best, adapter_best))
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    print(f"{args.events} events, best of {args.rounds} rounds; {machine()}\n")
    print("| scenario | raw SDK (events/s) | adapter (events/s) | adapter overhead |")
    print("|---|---:|---:|---:|")
    for title, raw_rate, adapter_rate in rows:
        if adapter_rate:
            overhead = f"{(raw_rate / adapter_rate - 1) * 100:+.1f}%"
            print(f"| {title} | {raw_rate:,.0f} | {adapter_rate:,.0f} | {overhead} |")
        else:
            print(f"| {title} | {raw_rate:,.0f} | - | - |")


if __name__ == "__main__":
    main()
