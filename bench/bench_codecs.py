"""Event formats side by side: encode+decode rate and encoded size, JSON vs Avro vs Protobuf.

Two typical events: an IoT telemetry reading and an order with three lines.
Rows, each a full round trip (event -> bytes -> event, data included):

- sdk-json: the cloudevents SDK's JSONFormat (the baseline)
- core-json: core.formats (structured JSON)
- avro: the CloudEvents Avro format, data in the spec's JSON-value union
- avro+avro-data: the CloudEvents Avro format, data Avro-encoded with the registered schema
- avro-compact: the CloudEvents Avro Compact format, JSON data as UTF-8 JSON text bytes
- avro-compact+avro-data: the Avro Compact format, data Avro-encoded with the registered schema
- protobuf: the CloudEvents Protobuf format, JSON data as text_data
- protobuf+proto-data: the CloudEvents Protobuf format, data a Protobuf message built from the schema (proto_data)

Same process, interleaved repeats, best of each (the least disturbed by other
load); ratios are against sdk-json measured in the same run.

    python bench/bench_codecs.py [--events N] [--repeats R] [--check]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from polybus.core.codecs.avro_compact import from_avro_compact, to_avro_compact
from polybus.core.codecs.avro_format import from_avro, to_avro
from polybus.core.codecs.protobuf_format import from_protobuf, to_protobuf
from polybus.core.codecs.typed import TypedFormat
from polybus.core.events import EventFactory
from polybus.core.formats import from_json, to_json
from polybus.core.schemas import SchemaRegistry

TELEMETRY = "com.example.iot.telemetry"
ORDER = "com.example.order.placed"
SCHEMAS = {
    TELEMETRY: {
        "type": "record",
        "name": "Telemetry",
        "fields": [
            {"name": "deviceId", "type": "string"},
            {"name": "temperature", "type": "double"},
            {"name": "humidity", "type": "int"},
            {"name": "battery", "type": "double"},
            {"name": "firmware", "type": "string"},
        ],
    },
    ORDER: {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "orderId", "type": "string"},
            {"name": "customerId", "type": "string"},
            {"name": "currency", "type": "string"},
            {"name": "total", "type": "double"},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Line",
                        "fields": [
                            {"name": "sku", "type": "string"},
                            {"name": "qty", "type": "int"},
                            {"name": "price", "type": "double"},
                        ],
                    },
                },
            },
            {"name": "shipping", "type": ["null", "string"], "default": None},
        ],
    },
}


def make_events(kind: str, n: int, registry: SchemaRegistry) -> list[CloudEvent]:
    ids, ticks = iter(range(n)), iter(range(n))
    start = datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
    factory = EventFactory(  # one event every 137 us: a 7,300 events/s stream
        id_factory=lambda: f"0b6f3c2e-7a1d-4c55-9e3b-{next(ids):012d}",
        clock=lambda: start + timedelta(microseconds=137 * next(ticks)),
    )
    uri = registry.latest(kind).uri
    if kind == TELEMETRY:
        return [
            factory.new(
                TELEMETRY,
                f"/fleet/eu-west/devices/{i % 5000}",
                {
                    "deviceId": f"dev-{i % 5000}",
                    "temperature": 21.5 + i % 7,
                    "humidity": 48,
                    "battery": 0.87,
                    "firmware": "4.2.1",
                },
                subject=f"dev-{i % 5000}",
                dataschema=uri,
                extensions={"partitionkey": f"dev-{i % 5000}"},
            )
            for i in range(n)
        ]
    return [
        factory.new(
            ORDER,
            "/shop/checkout",
            {
                "orderId": f"ord-{i:08d}",
                "customerId": f"cust-{i % 997}",
                "currency": "EUR",
                "total": 74.97,
                "lines": [
                    {"sku": "SKU-1001", "qty": 1, "price": 19.99},
                    {"sku": "SKU-2040", "qty": 2, "price": 12.49},
                    {"sku": "SKU-3300", "qty": 1, "price": 30.0},
                ],
                "shipping": "express",
            },
            subject=f"ord-{i:08d}",
            dataschema=uri,
        )
        for i in range(n)
    ]


SDK = JSONFormat()


def codecs(
    registry: SchemaRegistry,
) -> dict[str, tuple[Callable[[CloudEvent], bytes], Callable[[bytes], CloudEvent]]]:
    """Each row's (encode, decode) pair."""
    avro_typed, protobuf_typed = TypedFormat(registry, "avro"), TypedFormat(registry, "protobuf")
    compact_typed = TypedFormat(registry, "avro-compact")
    return {
        "sdk-json": (SDK.write, lambda b: SDK.read(CloudEvent, b)),
        "core-json": (to_json, from_json),
        "avro": (to_avro, from_avro),
        "avro+avro-data": (avro_typed.encode, avro_typed.decode),
        "avro-compact": (to_avro_compact, from_avro_compact),
        "avro-compact+avro-data": (compact_typed.encode, compact_typed.decode),
        "protobuf": (to_protobuf, from_protobuf),
        "protobuf+proto-data": (protobuf_typed.encode, protobuf_typed.decode),
    }


def check_round_trips(
    table: dict[str, tuple[Callable[[CloudEvent], bytes], Callable[[bytes], CloudEvent]]],
    events: list[CloudEvent],
) -> None:
    """Every row gives back an equal event (attributes and data) for every event, before timing."""
    for name, (encode, decode) in table.items():
        for event in events:
            back = decode(encode(event))
            assert back.get_data() == event.get_data(), (name, back.get_data())
            assert back.get_attributes() == event.get_attributes(), (name, back.get_attributes())


def round_trips(
    encode: Callable[[CloudEvent], bytes],
    decode: Callable[[bytes], CloudEvent],
    events: list[CloudEvent],
) -> None:
    for event in events:
        decode(encode(event))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if avro-compact+avro-data (the format offered for the target) misses it",
    )
    args = parser.parse_args()
    registry = SchemaRegistry("memory:")
    for event_type, definition in SCHEMAS.items():
        registry.register(event_type, definition, kind="avro")
    table = codecs(registry)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {args.events} events x {args.repeats} repeats, best of each"
    )
    missed = False
    for kind in (TELEMETRY, ORDER):
        events = make_events(kind, args.events, registry)
        check_round_trips(table, events)
        best = dict.fromkeys(table, float("inf"))
        for _ in range(args.repeats):
            for name, (encode, decode) in table.items():
                start = time.perf_counter()
                round_trips(encode, decode, events)
                best[name] = min(best[name], time.perf_counter() - start)
        sizes = {
            name: sum(len(encode(e)) for e in events[:200]) / 200
            for name, (encode, _) in table.items()
        }
        base_rate, base_size = args.events / best["sdk-json"], sizes["sdk-json"]
        print(f"\n{kind}")
        print(
            f"{'format':<22}{'round trips/s':>14}{'x sdk-json':>12}{'bytes':>8}{'vs sdk-json':>13}"
            f"{'targets':>9}"
        )
        for name in table:
            rate = args.events / best[name]
            speed, size = rate / base_rate, sizes[name] / base_size - 1
            met = speed >= 2.0 and size <= -0.30  # 2x the SDK's JSON, 30% smaller
            verdict = "" if "json" in name else "met" if met else "missed"
            print(
                f"{name:<22}{rate:>14,.0f}{speed:>11.2f}x{sizes[name]:>8.0f}{size:>+12.0%}"
                f"{verdict:>9}"
            )
            if name == "avro-compact+avro-data" and not met:
                missed = True
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
