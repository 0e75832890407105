"""The fast Protobuf paths (direct envelope reader/writer, generated data codec) against upb."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.codecs import data as data_module
from polybus.core.codecs import protobuf_read, protobuf_wire
from polybus.core.codecs.data import data_codec, protobuf_package
from polybus.core.codecs.protobuf_data import Unsupported, generate
from polybus.core.codecs.protobuf_format import (
    _read_with_upb,
    from_protobuf,
    message_classes,
    message_fields,
    read_event_any,
    read_protobuf_checked,
    to_message,
    to_protobuf,
)
from polybus.core.codecs.protobuf_read import read_event_checked
from polybus.core.codecs.protobuf_wire import write_protobuf
from polybus.core.codecs.wire import MEMO_LIMIT, read_varint
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory, validate_attributes
from polybus.core.schemas.model import Schema

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
STANDARD = {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject"}
RUNS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(min_size=1, max_size=40) | st.text(min_size=100, max_size=300)
times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.sampled_from(ZONES)
) | st.just(T0)
extension_names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda n: n not in STANDARD and n not in ("time", "data")
)
extension_values = (
    st.booleans()
    | st.integers(-(2**31), 2**31 - 1)
    | st.text(max_size=30)
    | st.binary(max_size=30)
    | times
)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """A valid event: any optional attributes, extensions of every type, any kind of data."""
    kind = draw(st.sampled_from(["none", "json", "text", "bytes", "proto"]))
    data: Any = {
        "none": None,
        "json": draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5))),
        "text": draw(st.text(max_size=50)),
        "bytes": draw(st.binary(max_size=50)),
        "proto": draw(st.binary(max_size=50)),
    }[kind]
    content_type = {"text": "text/plain", "bytes": "application/octet-stream"}.get(kind)
    if kind == "proto":
        content_type = "application/protobuf"
    optional = {
        name: draw(st.none() | texts) for name in ("subject", "dataschema") if draw(st.booleans())
    }
    return FACTORY.new(
        draw(texts),
        draw(texts),
        data,
        id=draw(texts),
        time=draw(times),
        datacontenttype=content_type,
        extensions=draw(st.dictionaries(extension_names, extension_values, max_size=4)),
        **{k: v for k, v in optional.items() if v is not None},
    )


def _fields(body: bytes) -> list[bytes]:
    """The raw top-level fields of a CloudEvent message (all length-delimited)."""
    fields, pos = [], 0
    while pos < len(body):
        size, start = read_varint(body, pos + 1)
        fields.append(body[pos : start + size])
        pos = start + size
    return fields


def _outcome(read: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return read(body)
    except EventValidationError:
        return "invalid"


@RUNS
@given(event=events())
def test_writer_writes_what_upb_writes(event: Any) -> None:
    """Field for field the bytes upb writes for the same event (map entries in any order)."""
    ours = to_protobuf(event)
    reference = to_message(event)
    assert message_classes()[0].FromString(ours) == reference
    assert sorted(_fields(ours)) == sorted(_fields(reference.SerializeToString(deterministic=True)))


@RUNS
@given(event=events())
def test_reader_reads_what_upb_writes(event: Any) -> None:
    """upb's bytes read back to the same event, directly (no upb), vouched for without validation."""
    body = to_message(event).SerializeToString()
    attrs, tag, data, type_url, suspect = read_event_checked(body)
    raw = data.encode() if isinstance(data, str) else data
    assert (attrs, tag, raw, type_url) == message_fields(message_classes()[0].FromString(body))
    assert not suspect
    back = from_protobuf(body)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == event.get_data()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """An event's bytes, cut, flipped, reordered or with fields added: often no longer plain."""
    body = to_protobuf(draw(events()))
    fields = _fields(body)
    how = draw(st.sampled_from(["cut", "flip", "unknown", "group", "twice", "reverse", "junk"]))
    if how == "cut":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if how == "flip":
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    at = draw(st.integers(0, len(fields)))
    if how == "unknown":
        number = draw(st.integers(9, 2000))
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        value = {0: b"\x96\x01", 1: bytes(8), 2: b"\x02hi", 5: bytes(4)}[wire]
        fields.insert(at, protobuf_wire.varint(number << 3 | wire) + value)
    elif how == "group":
        fields.insert(at, b"\x4b" + b"\x50\x01" + b"\x4c")  # field 9 as a group
    elif how == "twice" and fields:
        fields.insert(at, fields[draw(st.integers(0, len(fields) - 1))])
    elif how == "reverse":
        fields.reverse()
    else:
        fields.insert(at, draw(st.binary(min_size=1, max_size=6)))
    return b"".join(fields)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated())
def test_direct_reader_never_disagrees_with_upb(body: bytes) -> None:
    """Whatever the direct reader returns, upb reads the same; what it leaves gets upb's answer."""
    reference = _outcome(_read_with_upb, body)
    try:
        attrs, tag, data, type_url, _ = read_event_checked(body)
    except (ValueError, IndexError):  # junk or unusual: read_event_any asks upb
        found = _outcome(read_event_any, body)
        assert found == (reference if reference == "invalid" else (*reference, True))
    else:
        assert reference != "invalid", "the direct reader took bytes upb rejects"
        raw = data.encode() if isinstance(data, str) else data
        assert (attrs, tag, raw, type_url) == reference


def _upb_event_bytes(attributes: dict[str, Any], **fields: str) -> bytes:
    """A CloudEvent written by upb: fields 1-4 and `attributes` as (member, value) pairs."""
    msg = message_classes()[0](**fields)
    for name, (member, value) in attributes.items():
        if member == "ce_timestamp":
            msg.attributes[name].ce_timestamp.seconds, msg.attributes[name].ce_timestamp.nanos = (
                value
            )
        else:
            setattr(msg.attributes[name], member, value)
    return msg.SerializeToString()


REQUIRED = {"id": "1", "source": "/s", "spec_version": "1.0", "type": "t"}


@pytest.mark.parametrize(
    ("attributes", "fields"),
    [
        ({"subject": ("ce_integer", 5)}, REQUIRED),
        ({"subject": ("ce_string", "")}, REQUIRED),
        ({"time": ("ce_string", "2024-01-01T00:00:00Z")}, REQUIRED),
        ({"Bad-Name": ("ce_string", "x")}, REQUIRED),
        ({"data": ("ce_boolean", True)}, REQUIRED),
        ({"dataschema": ("ce_bytes", b"x")}, REQUIRED),
        ({}, {**REQUIRED, "spec_version": "0.3"}),
        ({}, {k: v for k, v in REQUIRED.items() if k != "id"}),
        ({}, {**REQUIRED, "type": ""}),
        ({"id": ("ce_timestamp", (1_800_000_000, 300_000_000))}, REQUIRED),
        ({"subject": ("ce_timestamp", (1_800_000_000, 300_000_000))}, REQUIRED),
    ],
    ids=[
        "int-subject",
        "empty-subject",
        "text-time",
        "bad-name",
        "data-name",
        "bytes-dataschema",
        "old-specversion",
        "no-id",
        "empty-type",
        "time-id",
        "time-subject",
    ],
)
def test_invalid_events_are_rejected_with_validate_attributes_report(
    attributes: dict[str, Any], fields: dict[str, str]
) -> None:
    """Events the reader does not vouch for get validate_attributes' full report."""
    body = _upb_event_bytes(attributes, **fields)
    with pytest.raises(EventValidationError) as reference:
        validate_attributes(_read_with_upb(body)[0])
    for _ in range(2):  # the second time from whatever the first one memoised
        assert read_event_any(body)[4]  # suspect
        with pytest.raises(EventValidationError) as ours:
            from_protobuf(body)
        assert ours.value.problems == reference.value.problems


@RUNS
@given(
    seconds=st.integers(-(2**40), 2**40) | st.integers(2**28, 2**35),
    nanos=st.integers(-(2**31), 2**31 - 1) | st.integers(0, 999_999_999),
    number=st.integers(-(2**63), 2**63 - 1),
)
def test_timestamps_and_integers_read_as_upb_reads_them(
    seconds: int, nanos: int, number: int
) -> None:
    """Any Timestamp (negative nanos too) and ce_integer varints wider than int32 read as upb does."""
    body = _upb_event_bytes({"time": ("ce_timestamp", (seconds, nanos))}, **REQUIRED)
    wide = protobuf_wire.varint(number)  # ce_integer written by a sloppy writer: upb keeps 32 bits
    entry = b"\x0a\x01n\x12" + bytes([len(wide) + 1]) + b"\x10" + wide
    body += b"\x2a" + bytes([len(entry)]) + entry
    try:
        reference = _read_with_upb(body)
    except EventValidationError:  # an instant datetime cannot hold
        assert _outcome(read_event_any, body) == "invalid"
        return
    assert read_event_any(body)[:4] == reference
    read_event_any(body)  # again: now from the memoised seconds
    assert read_event_any(body)[:4] == reference


def test_overrides_replace_attributes_without_copying() -> None:
    """write_protobuf's datacontenttype/dataschema equal writing an updated copy of the attributes."""
    event = FACTORY.new("t", "/s", {"a": 1}, dataschema="urn:x", extensions={"e": 1})
    attrs = event.get_attributes()
    replaced = write_protobuf(attrs, 0x42, b"\x08\x01", "u", "application/protobuf", "urn:y")
    copied = {**attrs, "datacontenttype": "application/protobuf", "dataschema": "urn:y"}
    cls = message_classes()[0]
    assert cls.FromString(replaced) == cls.FromString(
        write_protobuf(copied, 0x42, b"\x08\x01", "u")
    )
    assert attrs["dataschema"] == "urn:x"
    parsed = read_protobuf_checked(replaced)
    assert parsed[0]["dataschema"] == "urn:y" and parsed[2:] == (b"\x08\x01", "u", False)


def test_memos_stay_bounded() -> None:
    """Thousands of distinct attribute values never grow a memo past its limit."""
    for i in range(2 * MEMO_LIMIT + 10):
        event = FACTORY.new("t", "/s", time=T0 + timedelta(seconds=i), extensions={"k": f"v{i}"})
        assert from_protobuf(to_protobuf(event)).get_extension("k") == f"v{i}"
    memos = (protobuf_read._ENTRIES, protobuf_read._SECOND_TIMES, protobuf_read._INSTANTS)
    for memo in (*memos, protobuf_wire._SECONDS):
        assert len(memo) <= MEMO_LIMIT


# --- generated data codec ---------------------------------------------------------------

SUB = {"type": "record", "name": "Sub", "fields": [{"name": "x", "type": "int"}]}
ALL: dict[str, Any] = {
    "type": "record",
    "name": "All",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "y", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "os", "type": ["null", "string"]},
        {"name": "oi", "type": ["null", "int"]},
        {"name": "od", "type": ["null", "double"]},
        {"name": "ob", "type": ["null", "boolean"]},
        {"name": "sub", "type": SUB},
        {
            "name": "osub",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Deep",
                    "fields": [
                        {"name": "t", "type": "string"},
                        {"name": "tags", "type": {"type": "map", "values": "string"}},
                    ],
                },
            ],
        },
        {"name": "li", "type": {"type": "array", "items": "int"}},
        {"name": "ll", "type": {"type": "array", "items": "long"}},  # 16 on: two-byte tags
        {"name": "ls", "type": {"type": "array", "items": "string"}},
        {"name": "ly", "type": {"type": "array", "items": "bytes"}},
        {"name": "ld", "type": {"type": "array", "items": "double"}},
        {"name": "lf", "type": {"type": "array", "items": "float"}},
        {"name": "lb", "type": {"type": "array", "items": "boolean"}},
        {
            "name": "lr",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "q", "type": "long"}],
                },
            },
        },
        {"name": "ml", "type": {"type": "map", "values": "long"}},
        {"name": "md", "type": {"type": "map", "values": "double"}},
        {
            "name": "mr",
            "type": {
                "type": "map",
                "values": {
                    "type": "record",
                    "name": "V",
                    "fields": [{"name": "z", "type": "string"}],
                },
            },
        },
        {"name": "na", "type": ["null", {"type": "array", "items": "int"}]},
    ],
}
ALL_SCHEMA = Schema("com.example.all", 1, "avro", ALL)

short = st.text(max_size=20)
int32, int64 = st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1)
doubles = st.floats(allow_nan=False)
floats32 = st.floats(allow_nan=False, width=32)


def _all_data(strings: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Every field of ALL, with `strings` for the string values."""
    return st.fixed_dictionaries(
        {
            "s": strings,
            "d": doubles,
            "f": floats32,
            "i": int32,
            "l": int64,
            "b": st.booleans(),
            "y": st.binary(max_size=20),
            "e": st.sampled_from(["A", "B"]),
            "os": st.none() | strings,
            "oi": st.none() | int32,
            "od": st.none() | doubles,
            "ob": st.none() | st.booleans(),
            "sub": st.none() | st.fixed_dictionaries({"x": int32}),
            "osub": st.none()
            | st.fixed_dictionaries(
                {"t": strings, "tags": st.dictionaries(short, strings, max_size=3)}
            ),
            "li": st.lists(int32, max_size=5),
            "ll": st.lists(int64, max_size=5),
            "ls": st.lists(strings, max_size=3),
            "ly": st.lists(st.binary(max_size=5), max_size=3),
            "ld": st.lists(doubles, max_size=3),
            "lf": st.lists(floats32, max_size=3),
            "lb": st.lists(st.booleans(), max_size=4),
            "lr": st.lists(st.fixed_dictionaries({"q": int64}), max_size=3),
            "ml": st.dictionaries(short, int64, max_size=3),
            "md": st.dictionaries(short, doubles, max_size=3),
            "mr": st.dictionaries(short, st.fixed_dictionaries({"z": strings}), max_size=3),
            "na": st.none() | st.lists(int32, max_size=3),
        }
    )


def _upb(schema: Schema = ALL_SCHEMA) -> Any:
    """The upb message class data.py built for `schema` (the reference)."""
    from google.protobuf import message_factory

    data_codec(schema, "protobuf")
    name = f"{protobuf_package(schema.event_type, schema.version)}.Data"
    return message_factory.GetMessageClass(data_module._POOL.FindMessageTypeByName(name))


def _recorded(schema: Schema = ALL_SCHEMA) -> tuple[Any, Any, list[str]]:
    """The generated codec for `schema`, with upb fallbacks that note each use (none yet)."""
    found = _RECORDED.get(schema.event_type) or _RECORDED.setdefault(
        schema.event_type, _generate_recorded(schema)
    )
    found[2].clear()
    return found


_RECORDED: dict[str, tuple[Any, Any, list[str]]] = {}  # generated once per schema: exec is slow


def _generate_recorded(schema: Schema) -> tuple[Any, Any, list[str]]:
    cls, used = _upb(schema), []

    def encode(data: Any) -> bytes:
        used.append("encode")
        return cls(**data).SerializeToString(deterministic=True)  # type: ignore[no-any-return]

    def decode(payload: bytes) -> Any:
        used.append("decode")
        return data_module._to_plain(cls.FromString(payload))

    encoder, decoder = generate(cls.DESCRIPTOR, encode, decode)
    return encoder, decoder, used


@RUNS
@given(data=_all_data(short))
def test_generated_codec_is_upb_without_upb(data: dict[str, Any]) -> None:
    """Every covered type: upb's deterministic bytes and upb's reading, without the fallbacks."""
    cls = _upb()
    encode, decode, used = _recorded()
    reference = cls(**data).SerializeToString(deterministic=True)
    assert encode(data) == reference
    expected = data_module._to_plain(cls.FromString(reference))
    assert decode(reference) == expected
    assert decode(cls(**data).SerializeToString()) == expected  # maps in upb's own order
    assert used == []


@RUNS
@given(data=_all_data(st.text(max_size=200)), drop=st.sampled_from([None, "s", "lr", "osub"]))
def test_generated_codec_leaves_the_rest_to_upb(data: dict[str, Any], drop: str | None) -> None:
    """Long strings and missing keys go through the fallback and still give upb's bytes."""
    cls = _upb()
    if drop:
        del data[drop]
    encode, decode = data_codec(ALL_SCHEMA, "protobuf")
    reference = cls(**data).SerializeToString(deterministic=True)
    assert encode(data) == reference
    assert decode(reference) == data_module._to_plain(cls.FromString(reference))


FULL: dict[str, Any] = {
    "s": "héllo",
    "d": -0.0,
    "f": 1.5,
    "i": -70000,
    "l": 2**40,
    "b": True,
    "y": b"\x00\xff",
    "e": "B",
    "os": "",
    "oi": 0,
    "od": 0.0,
    "ob": False,
    "sub": {"x": 0},
    "osub": {"t": "", "tags": {"b": "2", "a": ""}},
    "li": [1, -1, 10000, -(2**31)],
    "ll": [2**63 - 1],
    "ls": ["a", ""],
    "ly": [b""],
    "ld": [0.0, 1e300],
    "lf": [0.5],
    "lb": [True, False],
    "lr": [{"q": 1}, {"q": 0}],
    "ml": {"k": -5, "": 0},
    "md": {"z": -0.0},
    "mr": {"v": {"z": "w"}},
    "na": None,
}


def test_full_example_takes_the_fast_path() -> None:
    """A datum using every covered type (zeros, empties, negatives) is written and read without upb."""
    cls = _upb()
    encode, decode, used = _recorded()
    body = encode(FULL)
    assert body == cls(**FULL).SerializeToString(deterministic=True)
    assert decode(body) == {**FULL, "na": []}
    assert used == []


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"i": True},
        {"i": 1.0},
        {"i": 2**31},
        {"l": -(2**63) - 1},
        {"b": 1},
        {"d": 7},
        {"d": "7"},
        {"f": 1e300},
        {"y": "text"},
        {"s": None},
        {"s": b"bytes"},
        {"li": (1, 2)},
        {"sub": {"x": 1, "extra": 2}},
        {"ml": {"k": None}},
        {"lb": [1]},
    ],
    ids=repr,
)
def test_misfits_get_upbs_answer(change: dict[str, Any]) -> None:
    """Values the generated encoder does not take give upb's bytes or a ValueError, as before."""
    cls = _upb()
    data = FULL | change
    encode, _ = data_codec(ALL_SCHEMA, "protobuf")
    try:
        reference: Any = cls(**data).SerializeToString(deterministic=True)
    except (TypeError, ValueError, OverflowError):
        with pytest.raises(ValueError, match="does not fit"):
            encode(data)
    else:
        assert encode(data) == reference


def _data_mutations() -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        body = _upb()(**draw(_all_data(short))).SerializeToString()
        how = draw(st.sampled_from(["cut", "flip", "unknown", "unpacked", "twice", "junk"]))
        at = draw(st.integers(0, len(body)))
        if how == "cut":
            return body[:at]
        if how == "flip" and body:
            at = min(at, len(body) - 1)
            return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        extra = {
            "unknown": b"\xf8\x07\x01",  # field 127, a varint
            "unpacked": b"\x78\x02",  # li (field 15) as one unpacked varint
            "twice": b"\x6a\x02\x08\x02",  # sub (field 13) again: upb merges the two
            "junk": draw(st.binary(min_size=1, max_size=4)),
        }.get(how, b"")
        return body + extra if draw(st.booleans()) else extra + body

    return build()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_data_mutations())
def test_generated_decoder_never_disagrees_with_upb(body: bytes) -> None:
    """Whatever the generated decoder returns on its own, upb reads the same."""
    cls = _upb()
    _, decode, _ = _recorded()
    try:
        reference: Any = data_module._to_plain(cls.FromString(body))
    except Exception:  # google.protobuf.message.DecodeError
        reference = "invalid"
    try:
        found: Any = decode(body)
    except Exception:  # the upb fallback raised: the same bytes upb rejects
        found = "invalid"
    assert _canonical(found) == _canonical(reference)


def _canonical(value: Any) -> Any:
    """Comparable plain data: dicts in key order, floats by repr (a flipped byte may make a NaN)."""
    if isinstance(value, dict):
        return sorted((k, _canonical(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return repr(value) if isinstance(value, float) else value


def test_bench_shapes_take_the_fast_path() -> None:
    """A flat record and one with a list of records (telemetry, order) skip upb both ways."""
    line = {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}
    order = {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "orderId", "type": "string"},
            {"name": "qty", "type": "int"},
            {"name": "total", "type": "double"},
            {"name": "lines", "type": {"type": "array", "items": line}},
            {"name": "shipping", "type": ["null", "string"], "default": None},
        ],
    }
    schema = Schema("com.example.fast", 1, "avro", order)
    encode, decode, used = _recorded(schema)
    for data in (
        {"orderId": "o-1", "qty": 3, "total": 74.97, "lines": [{"sku": "a"}], "shipping": None},
        {"orderId": "", "qty": -9000, "total": 0.0, "lines": [], "shipping": "express"},
    ):
        body = encode(data)
        assert body == _upb(schema)(**data).SerializeToString()
        assert decode(body) == data
    assert used == []


def test_uncovered_field_types_are_unsupported() -> None:
    """A message with a type data.py never builds (int32) is left to the runtime entirely."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto(name="x.proto", package="x", syntax="proto3")
    file.message_type.add(name="M").field.add(name="n", number=1, type=5, label=1)
    pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("x.M"))
    with pytest.raises(Unsupported):
        generate(cls.DESCRIPTOR, lambda d: b"", lambda b: {})


def test_a_timestamp_beyond_year_9999_is_junk_not_a_crash() -> None:
    """A ce_timestamp whose seconds overflow datetime is a ValueError to the reader, an EventValidationError to callers."""
    body = (
        b'\n\x070\xc2\x80\xc2\x80\xc2\x80\x12\x050\xc2\x80\xc2\x80\x1a\x031.0"\x010*\x15\n\x04time'
        b"\x12\r:\x0b\x08\x80\x99\xfb\xf0\xff\xff\xff\xff\xff\x00"
    )
    with pytest.raises(ValueError, match="out of range"):
        read_event_checked(body)
    with pytest.raises(EventValidationError) as raised:
        from_protobuf(body)
    assert raised.value.problems[0].field == "body"
