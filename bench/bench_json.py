"""JSON encode+decode round trip: core.formats against the cloudevents SDK's JSONFormat.

Same events, same process, interleaved repeats; the best of each is kept
(the least disturbed by other load). Event: a typical IoT telemetry reading.

    python bench/bench_json.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudevents.core.formats.json import JSONFormat

from polybus.core.events import EventFactory
from polybus.core.formats import from_json, to_json


def telemetry_events(n: int) -> list:
    ids = iter(range(n))
    factory = EventFactory(
        id_factory=lambda: f"0b6f3c2e-{next(ids):08d}",
        clock=lambda: datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC),
    )
    return [
        factory.new(
            "com.example.iot.telemetry",
            f"/fleet/eu-west/devices/{i % 5000}",
            {"deviceId": f"dev-{i % 5000}", "temperature": 21.5, "humidity": 48, "battery": 0.87},
            subject=f"dev-{i % 5000}",
            extensions={"partitionkey": f"dev-{i % 5000}", "seq": i},
        )
        for i in range(n)
    ]


def best_rate(fn, events: list, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(events)
        best = min(best, time.perf_counter() - start)
    return len(events) / best


def ours(events: list) -> None:
    for e in events:
        from_json(to_json(e))


SDK = JSONFormat()


def sdk(events: list) -> None:
    for e in events:
        SDK.read(None, SDK.write(e))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    events = telemetry_events(args.events)
    assert from_json(to_json(events[0])).get_attributes() == events[0].get_attributes()
    rates = {"core": [], "sdk": []}
    for _ in range(args.repeats):  # interleave so drift hits both alike
        rates["core"].append(best_rate(ours, events, 1))
        rates["sdk"].append(best_rate(sdk, events, 1))
    core_rate, sdk_rate = max(rates["core"]), max(rates["sdk"])
    print("| codec | round trips/s | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| cloudevents SDK JSONFormat write+read | {sdk_rate:,.0f} | 1.00x |")
    print(f"| core.formats to_json+from_json | {core_rate:,.0f} | {core_rate / sdk_rate:.2f}x |")
    print(
        f"\nencoded size: {len(to_json(events[0]))} bytes (SDK: {len(SDK.write(events[0]))} bytes)"
    )


if __name__ == "__main__":
    main()
