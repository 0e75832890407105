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

With --upb, two more rows measure what the hand-written Protobuf envelope
reader/writer (protobuf_wire, protobuf_read) buys over the protobuf runtime:

- protobuf-upb: the same format, message built and parsed by upb (to_message, FromString)
- protobuf-upb+proto-data: the same, data through the schema's upb message as above

With --reference, two rows measure what the hand-written Avro Compact codec
(avro_compact, avro_timestamp, avro_wire) and Avro data codec (avro_data) buy
over fastavro:

- avro-compact-fastavro: the same format through fastavro's schemaless writer/reader
- avro-compact-fastavro+avro-data: the same, data also through fastavro with the schema
- avro-fastavro+avro-data: the CloudEvents Avro format with Avro data, both through fastavro
  (the hand-written avro_format, avro_attribute_map and avro_data_union write the same bytes)

Same process, interleaved repeats, best of each (the least disturbed by other
load); ratios are against sdk-json measured in the same run.

    python bench/bench_codecs.py [--events N] [--repeats R] [--rounds K] [--upb] [--reference] [--check]

--rounds K repeats the whole measurement K times and prints each round's
ratios and their range (the spread under load).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from bench.common import machine
from polybus.core.codecs.avro_attribute_map import time_text
from polybus.core.codecs.avro_compact import (
    CLOUDEVENT_COMPACT_AVSC,
    from_avro_compact,
    to_avro_compact,
)
from polybus.core.codecs.avro_format import CLOUDEVENT_AVSC, from_avro, to_avro
from polybus.core.codecs.protobuf_format import (
    from_protobuf,
    message_classes,
    message_fields,
    message_of,
    protobuf_event,
    to_message,
    to_protobuf,
)
from polybus.core.events import EventFactory, build_event, validate_attributes
from polybus.core.formats import (
    dumps_json,
    from_json,
    is_json_content_type,
    loads_json,
    parse_time,
    to_json,
)
from polybus.core.schemas import SchemaRegistry, parse_dataschema
from polybus.core.schemas.data import data_codec
from polybus.core.schemas.typed import TypedFormat

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


Codec = tuple[Callable[[CloudEvent], bytes], Callable[[bytes], CloudEvent]]


def _upb_decode(body: bytes) -> CloudEvent:
    """The Protobuf format read by upb alone, then validated (the reader cannot vouch)."""
    attrs, tag, data, _ = message_fields(message_classes()[0].FromString(body))
    return protobuf_event(attrs, tag, data)


def upb_codecs(registry: SchemaRegistry) -> dict[str, Codec]:
    """The Protobuf rows again with upb building and parsing the envelope (no direct reader/writer)."""
    encoders: dict[str | None, tuple[str, Callable[[Any], bytes]]] = {}
    decoders: dict[str | None, Callable[[bytes], Any]] = {}

    def typed_encode(event: CloudEvent) -> bytes:
        attrs = event.get_attributes()
        found = encoders.get(attrs.get("dataschema"))
        if found is None:
            schema = registry.for_event(event)
            assert schema is not None
            found = encoders[attrs.get("dataschema")] = (
                schema.uri,
                data_codec(schema, "protobuf")[0],
            )
        uri, encode = found
        payload = encode(event.get_data())
        overrides = {"datacontenttype": "application/protobuf", "dataschema": uri}
        return message_of({**attrs, **overrides}, payload).SerializeToString()  # type: ignore[no-any-return]

    def typed_decode(body: bytes) -> CloudEvent:
        attrs, _, data, _ = message_fields(message_classes()[0].FromString(body))
        decode = decoders.get(attrs.get("dataschema"))
        if decode is None:
            named = parse_dataschema(attrs.get("dataschema"))
            assert named is not None
            decode = decoders[attrs.get("dataschema")] = data_codec(
                registry.get(*named), "protobuf"
            )[1]
        value = decode(data)
        attrs["datacontenttype"] = "application/json"
        validate_attributes(attrs, value, check_data=False)
        return build_event(attrs, value)

    return {
        "protobuf-upb": (lambda e: to_message(e).SerializeToString(), _upb_decode),
        "protobuf-upb+proto-data": (typed_encode, typed_decode),
    }


_COMPACT_FIELDS = ("datacontenttype", "dataschema", "subject", "time")
_COMPACT_STANDARD = frozenset(("id", "source", "type", "specversion", *_COMPACT_FIELDS))


def _fastavro_io(schema: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """fastavro's schemaless writer and reader for a parsed schema."""
    import fastavro

    parsed = fastavro.parse_schema(schema)

    def write(datum: Any) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, datum)
        return out.getvalue()

    return write, lambda body: fastavro.schemaless_reader(io.BytesIO(body), parsed, None)


def reference_codecs(registry: SchemaRegistry) -> dict[str, Codec]:
    """The Avro Compact rows again through fastavro (envelope, then data too)."""
    write, read = _fastavro_io(CLOUDEVENT_COMPACT_AVSC)
    data_io = {t: _fastavro_io(registry.latest(t).definition) for t in SCHEMAS}

    def record(attrs: dict[str, Any], data: bytes | None) -> dict[str, Any]:
        out = {"id": attrs["id"], "source": attrs["source"], "type": attrs["type"], "data": data}
        out.update((name, attrs.get(name)) for name in _COMPACT_FIELDS)
        out["attributes"] = {k: v for k, v in attrs.items() if k not in _COMPACT_STANDARD}
        return out

    def attributes(rec: dict[str, Any]) -> dict[str, Any]:
        attrs = {"specversion": "1.0", "id": rec["id"], "source": rec["source"]}
        attrs["type"] = rec["type"]
        attrs.update((name, rec[name]) for name in _COMPACT_FIELDS if rec[name] is not None)
        attrs.update(rec["attributes"])
        return attrs

    def encode(event: CloudEvent) -> bytes:
        attrs, data = event.get_attributes(), event.get_data()
        if data is not None and is_json_content_type(attrs.get("datacontenttype")):
            return write(record(attrs, dumps_json(data).encode()))
        return write(record(attrs, data))  # type: ignore[arg-type]  # bytes or None here

    def decode(body: bytes) -> CloudEvent:
        rec = read(body)
        attrs, data = attributes(rec), rec["data"]
        if data is not None and is_json_content_type(attrs.get("datacontenttype")):
            data = loads_json(data)
        validate_attributes(attrs, data, check_data=False)
        return build_event(attrs, data)

    def typed_encode(event: CloudEvent) -> bytes:
        attrs = event.get_attributes()
        payload = data_io[attrs["type"]][0](event.get_data())
        return write(record({**attrs, "datacontenttype": "application/avro"}, payload))

    def typed_decode(body: bytes) -> CloudEvent:
        rec = read(body)
        attrs = attributes(rec)
        data = data_io[attrs["type"]][1](rec["data"])
        attrs["datacontenttype"] = "application/json"
        validate_attributes(attrs, data, check_data=False)
        return build_event(attrs, data)

    write_spec, read_spec = _fastavro_io(CLOUDEVENT_AVSC)

    def spec_encode(event: CloudEvent) -> bytes:
        attrs = {**event.get_attributes(), "datacontenttype": "application/avro"}
        payload = data_io[attrs["type"]][0](event.get_data())
        attrs["time"] = time_text(attrs["time"])
        return write_spec({"attribute": attrs, "data": payload})

    def spec_decode(body: bytes) -> CloudEvent:
        rec = read_spec(body)
        attrs = rec["attribute"]
        parse_time(attrs)
        data = data_io[attrs["type"]][1](rec["data"])
        attrs["datacontenttype"] = "application/json"
        validate_attributes(attrs, data, check_data=False)
        return build_event(attrs, data)

    return {
        "avro-compact-fastavro": (encode, decode),
        "avro-compact-fastavro+avro-data": (typed_encode, typed_decode),
        "avro-fastavro+avro-data": (spec_encode, spec_decode),
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


def measure(table: dict[str, Codec], events: list[CloudEvent], repeats: int) -> dict[str, float]:
    """Best seconds per row for a pass over `events`, rows interleaved in every repeat."""
    best = dict.fromkeys(table, float("inf"))
    for _ in range(repeats):
        for name, (encode, decode) in table.items():
            start = time.perf_counter()
            round_trips(encode, decode, events)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1, help="whole measurements, each printed")
    parser.add_argument("--upb", action="store_true", help="add the upb-only Protobuf rows")
    parser.add_argument("--reference", action="store_true", help="add the fastavro rows")
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
    if args.upb:
        table |= upb_codecs(registry)
    if args.reference:
        table |= reference_codecs(registry)
    print(
        f"{machine()}; {args.events} events x {args.repeats} repeats, best of each, "
        f"{args.rounds} round(s)"
    )
    missed = False
    for kind in (TELEMETRY, ORDER):
        events = make_events(kind, args.events, registry)
        check_round_trips(table, events)
        sizes = {
            name: sum(len(encode(e)) for e in events[:200]) / 200
            for name, (encode, _) in table.items()
        }
        speeds: dict[str, list[float]] = {name: [] for name in table}
        for number in range(args.rounds):
            best = measure(table, events, args.repeats)
            base_rate, base_size = args.events / best["sdk-json"], sizes["sdk-json"]
            print(f"\n{kind}, round {number + 1}")
            print(
                f"{'format':<33}{'round trips/s':>14}{'x sdk-json':>12}{'bytes':>8}"
                f"{'vs sdk-json':>13}{'targets':>9}"
            )
            for name in table:
                rate = args.events / best[name]
                speed, size = rate / base_rate, sizes[name] / base_size - 1
                speeds[name].append(speed)
                met = speed >= 2.0 and size <= -0.30  # 2x the SDK's JSON, 30% smaller
                verdict = "" if "json" in name else "met" if met else "missed"
                print(
                    f"{name:<33}{rate:>14,.0f}{speed:>11.2f}x{sizes[name]:>8.0f}{size:>+12.0%}"
                    f"{verdict:>9}"
                )
                if name == "avro-compact+avro-data" and not met:
                    missed = True
        if args.rounds > 1:
            print(f"\n{kind}: x sdk-json over {args.rounds} rounds, median (range)")
            for name, values in speeds.items():
                print(
                    f"{name:<33}{statistics.median(values):>6.2f}x "
                    f"({min(values):.2f}-{max(values):.2f})"
                )
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
