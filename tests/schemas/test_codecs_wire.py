"""Hand-written Avro and Protobuf codecs against the reference runtimes (fastavro, protobuf/upb)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest

from polybus.core.codecs.avro_data import Unsupported, generate
from polybus.core.codecs.avro_format import (
    CLOUDEVENT_AVSC,
    from_avro,
    read_avro,
    to_avro,
    write_avro,
)
from polybus.core.codecs.protobuf_format import from_protobuf, message_classes, to_protobuf
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory
from polybus.core.schemas import SchemaRegistry
from polybus.core.schemas.errors import SchemaValidationError
from polybus.core.schemas.typed import TypedFormat

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)

LINE = {
    "type": "record",
    "name": "Line",
    "namespace": "shop",
    "fields": [
        {"name": "sku", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "price", "type": "double"},
    ],
}
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "total", "type": "double"},
        {"name": "ratio", "type": "float"},
        {"name": "count", "type": "long"},
        {"name": "paid", "type": "boolean"},
        {"name": "blob", "type": "bytes"},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "PAID"]}},
        {"name": "lines", "type": {"type": "array", "items": LINE}},
        {"name": "extra", "type": {"type": "array", "items": "Line"}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "shipping", "type": ["null", "string"], "default": None},
        {"name": "amount", "type": ["null", "long", "double", "string"]},
        {"name": "note", "type": "string", "default": "none"},
        {"name": "nothing", "type": "null"},
    ],
}
ORDERS: list[dict[str, Any]] = [
    {
        "orderId": "ord-1",
        "total": 74.97,
        "ratio": 0.5,
        "count": -(2**40),
        "paid": True,
        "blob": b"\x00\xff",
        "hash": b"abcd",
        "state": "PAID",
        "lines": [{"sku": "SKU-1", "qty": 2, "price": 19.99}] * 3,
        "extra": [],
        "tags": {"gift": "yes", "ünï": "çødé"},
        "shipping": "express",
        "amount": 12,
        "note": "x" * 3000,
        "nothing": None,
    },
    {
        "orderId": "",
        "total": -1e300,
        "ratio": -2.25,
        "count": 0,
        "paid": False,
        "blob": b"",
        "hash": b"\x00\x00\x00\x00",
        "state": "NEW",
        "lines": [],
        "extra": [{"sku": "s", "qty": -5, "price": 0.0}],
        "tags": {},
        "shipping": None,
        "amount": 2.5,
        "note": "n",
        "nothing": None,
    },
]


def _fastavro_write(schema: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return out.getvalue()


def _fastavro_read(schema: Any, body: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(schema), None)


@pytest.mark.parametrize("datum", ORDERS, ids=["full", "empty-ish"])
def test_generated_avro_writes_what_fastavro_writes(datum: dict[str, Any]) -> None:
    """Every Avro type the generator covers: same bytes as fastavro, and each reads the other's."""
    encode, decode = generate(ORDER)
    ours = encode(datum)
    assert ours == _fastavro_write(ORDER, datum)
    assert _fastavro_read(ORDER, ours) == datum
    assert decode(_fastavro_write(ORDER, datum)) == datum


def test_generated_avro_fills_defaults_and_rejects_misfits() -> None:
    """A missing field with a default takes it; wrong types and trailing bytes raise."""
    encode, decode = generate(ORDER)
    datum = {k: v for k, v in ORDERS[0].items() if k not in ("note", "shipping")}
    assert decode(encode(datum)) == {**datum, "note": "none", "shipping": None}
    for bad in ({**ORDERS[0], "count": "7"}, {**ORDERS[0], "state": "LOST"}, {}):
        with pytest.raises((TypeError, KeyError, AttributeError, ValueError)):
            encode(bad)
    with pytest.raises(ValueError, match="left over"):
        decode(encode(ORDERS[0]) + b"\x00")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "record", "name": "N", "fields": [{"name": "next", "type": ["null", "N"]}]},
        ["string", {"type": "enum", "name": "E", "symbols": ["A"]}],
    ],
    ids=["logical", "recursive", "ambiguous-union"],
)
def test_generator_declines_what_it_does_not_cover(schema: Any) -> None:
    """Logical types, recursive types and unions Python types cannot split are left to fastavro."""
    with pytest.raises(Unsupported):
        generate(schema)


def _event(data: Any = None, **extra: Any) -> Any:
    return FACTORY.new(
        "com.example.t",
        "/s/ü",
        data,
        subject="sub",
        dataschema="urn:polybus:schema:com.example.t:1",
        extensions={"flag": True, "off": False, "count": -7, "raw": b"\x01", "stamp": T0},
        **extra,
    )


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        (b"\x00\xff" * 100, {"datacontenttype": "application/octet-stream"}),
        ("plain text ✓", {"datacontenttype": "text/plain"}),
        (None, {}),
    ],
    ids=["bytes", "text", "none"],
)
def test_avro_envelope_interop_with_fastavro(data: Any, extra: dict[str, Any]) -> None:
    """The direct Avro writer matches fastavro with the spec schema, and reads fastavro's bytes."""
    event = _event(data, **extra)
    body = to_avro(event)
    record = _fastavro_read(CLOUDEVENT_AVSC, body)
    assert record["data"] == data
    assert record["attribute"]["time"] == "2024-05-01T12:00:00.123456Z"
    assert record["attribute"]["count"] == -7 and record["attribute"]["raw"] == b"\x01"
    assert _fastavro_write(CLOUDEVENT_AVSC, record) == body
    back = from_avro(_fastavro_write(CLOUDEVENT_AVSC, record))
    expected = {**event.get_attributes(), "stamp": "2024-05-01T12:00:00.123456Z"}
    assert back.get_attributes() == expected and back.get_data() == data  # Avro has no timestamp


def test_avro_reader_takes_blocked_maps_and_nulls() -> None:
    """Map blocks written with a byte size (negative count) and null attribute values read back."""
    body = write_avro({"id": "1", "nothing": None}, None)
    assert read_avro(body) == ({"id": "1"}, None)
    blocked = b"\x01\x0c" + b"\x04id\x06\x021" + b"\x00\x02"  # count -1, 6 bytes, then the entry
    assert read_avro(blocked) == ({"id": "1"}, None)


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        (b"\x00\xff", {"datacontenttype": "application/octet-stream"}),
        ("plain text ✓", {"datacontenttype": "text/plain"}),
        ({"k": [1, 2, {"x": None}]}, {}),
        (None, {}),
    ],
    ids=["bytes", "text", "json", "none"],
)
def test_protobuf_wire_interop_with_the_protobuf_runtime(data: Any, extra: dict[str, Any]) -> None:
    """upb parses the direct writer's bytes field for field, and the reader takes upb's bytes."""
    event = _event(data, **extra)
    body = to_protobuf(event)
    cls = message_classes()[0]
    msg = cls.FromString(body)
    assert (msg.id, msg.source, msg.spec_version, msg.type) == (
        "id-1",
        "/s/ü",
        "1.0",
        "com.example.t",
    )
    assert msg.attributes["flag"].ce_boolean is True
    assert msg.attributes["off"].WhichOneof("attr") == "ce_boolean"
    assert msg.attributes["count"].ce_integer == -7
    assert msg.attributes["raw"].ce_bytes == b"\x01"
    assert msg.attributes["stamp"].ce_timestamp.nanos == 123456000
    assert msg.attributes["dataschema"].ce_uri == "urn:polybus:schema:com.example.t:1"
    back = from_protobuf(msg.SerializeToString())
    assert back.get_attributes() == event.get_attributes() and back.get_data() == data


def test_protobuf_reader_skips_unknown_fields_and_old_times() -> None:
    """Unknown fields (every wire type) are skipped; times before 1970 keep their sign."""
    early = datetime(1960, 1, 1, 0, 0, 0, 5, tzinfo=timezone(timedelta(hours=-3)))
    body = to_protobuf(FACTORY.new("t", "/s", time=early))
    unknown = b"\x48\x96\x01" + b"\x51" + bytes(8) + b"\x5a\x02hi" + b"\x65" + bytes(4)
    back = from_protobuf(unknown + body)
    assert back.get_time() == early


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_direct_readers_reject_junk(fmt: str) -> None:
    """Truncated or trailing bytes are EventValidationErrors, not garbage events."""
    body = (to_avro if fmt == "avro" else to_protobuf)(_event({"a": 1}))
    read = from_avro if fmt == "avro" else from_protobuf
    for bad in (body[:-3], body + b"\x07", b"\x80" * 12):
        with pytest.raises(EventValidationError):
            read(bad)


TYPED_SCHEMA = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "deviceId", "type": "string"},
        {"name": "temperature", "type": "double"},
        {"name": "humidity", "type": "int"},
        {"name": "lines", "type": {"type": "array", "items": LINE}},
        {"name": "shipping", "type": ["null", "string"], "default": None},
    ],
}


@pytest.fixture
def registry() -> SchemaRegistry:
    """A registry holding TYPED_SCHEMA as version 1 of com.example.t."""
    found = SchemaRegistry("memory:")
    found.register("com.example.t", TYPED_SCHEMA, kind="avro")
    return found


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_typed_format_round_trips_schema_encoded_data(fmt: str, registry: SchemaRegistry) -> None:
    """JSON data travels schema-encoded and comes back as an equal event; other data passes through."""
    codec = TypedFormat(registry, fmt)
    data = {"deviceId": "d", "temperature": 21.5, "humidity": 48, "lines": [], "shipping": None}
    for event in (
        _event(data),
        _event(b"\x01", datacontenttype="application/octet-stream"),
        _event("t", datacontenttype="text/plain"),
        _event(None),
    ):
        back = codec.decode(codec.encode(event))
        expected = dict(event.get_attributes())
        if fmt == "avro":  # the Avro format carries timestamp extensions as RFC 3339 text
            expected["stamp"] = "2024-05-01T12:00:00.123456Z"
        assert back.get_attributes() == expected
        assert back.get_data() == event.get_data()


def test_typed_format_wire_is_the_spec_format(registry: SchemaRegistry) -> None:
    """A plain reader of each format sees application/avro or proto_data with the schema's bytes."""
    data = {"deviceId": "d", "temperature": 1.0, "humidity": 2, "lines": [], "shipping": "x"}
    event = _event(data)
    plain = from_avro(TypedFormat(registry, "avro").encode(event))
    assert plain.get_datacontenttype() == "application/avro"
    assert _fastavro_read(TYPED_SCHEMA, plain.get_data()) == data
    msg = message_classes()[0].FromString(TypedFormat(registry, "protobuf").encode(event))
    assert msg.WhichOneof("data") == "proto_data"
    assert msg.proto_data.type_url.endswith(".v1.Data")


def test_typed_format_refuses_data_that_misfits_its_schema(registry: SchemaRegistry) -> None:
    """Data that does not fit the registered schema is a SchemaValidationError before any bytes."""
    with pytest.raises(SchemaValidationError):
        TypedFormat(registry, "avro").encode(_event({"deviceId": 5}))
    with pytest.raises(ValueError, match="binary format"):
        TypedFormat(registry, "json")


def test_pure_python_protobuf_reader_agrees_with_upb() -> None:
    """protobuf_read.read_protobuf reads the same attributes and data as the upb parse."""
    from polybus.core.codecs.protobuf_format import message_fields
    from polybus.core.codecs.protobuf_read import read_protobuf

    body = b"\x48\x96\x01" + to_protobuf(_event({"k": [1, "x"]}))
    assert read_protobuf(body) == message_fields(message_classes()[0].FromString(body))
