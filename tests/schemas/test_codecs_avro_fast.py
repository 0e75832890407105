"""The fast CloudEvents Avro paths against fastavro: bytes both ways, memoised runs, validation only when suspect."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.codecs.avro_data_union import (
    NotRepresentable,
    from_record_value,
    json_value_bytes,
    read_data,
    to_record_value,
)
from polybus.core.codecs.avro_format import (
    CLOUDEVENT_AVSC,
    from_avro,
    read_avro,
    read_avro_checked_any,
    to_avro,
    to_avro_record,
    write_avro,
)
from polybus.core.codecs.avro_wire import PACK_D, zigzag
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory, build_event, validate_attributes
from polybus.core.formats import parse_time
from polybus.core.schemas import SchemaRegistry
from polybus.core.schemas.typed import TypedFormat

SCHEMA = fastavro.parse_schema(CLOUDEVENT_AVSC)
T0 = datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)
STANDARD = ("id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject")
ZONES = (UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30)))
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fastavro_write(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, record)
    return out.getvalue()


def _fastavro_read(body: bytes) -> dict[str, Any]:
    stream = io.BytesIO(body)
    record: dict[str, Any] = fastavro.schemaless_reader(
        stream, SCHEMA, None, return_record_name=True
    )
    assert stream.tell() == len(body)
    return record


def _typed(value: Any) -> Any:
    """A value with the type of every part made explicit (1 == 1.0 == True would hide a branch)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, value)


def _record_data(record: dict[str, Any]) -> Any:
    data = record["data"]
    return from_record_value(data) if type(data) in (dict, list) else data


def _reference(body: bytes) -> Any:
    """What validate_attributes makes of the attributes fastavro reads: an event or its error."""
    record = _fastavro_read(body)
    attrs = dict(record["attribute"])
    try:
        parse_time(attrs)
        validate_attributes(attrs, None, check_data=False)
    except EventValidationError as exc:
        return exc
    return build_event(attrs, _record_data(record))


def _outcome(decode: Any, body: bytes) -> Any:
    try:
        return decode(body)
    except EventValidationError as exc:
        return exc


def _same_outcome(ours: Any, reference: Any) -> None:
    if isinstance(reference, EventValidationError):
        assert isinstance(ours, EventValidationError), ours
        assert ours.problems == reference.problems and str(ours) == str(reference)
    else:
        assert not isinstance(ours, EventValidationError), ours
        assert ours.get_attributes() == reference.get_attributes()
        assert _typed(ours.get_data()) == _typed(reference.get_data())


# --- strategies ------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
_long_text = st.text(st.characters(codec="utf-8"), min_size=1030, max_size=1100)
_names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda n: n not in STANDARD and n not in ("time", "data")
)
_datetimes = st.datetimes(  # away from the ends, where comparing across zones overflows
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.sampled_from(ZONES)
)
_extension_values = st.one_of(
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.binary(max_size=8),
    _datetimes,
)
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False),
    st.text(st.characters(codec="utf-8"), max_size=8),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=12,
)
_times = st.one_of(st.none(), _datetimes, st.just(T0))


@st.composite
def _events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["json", "bytes", "text", "none"]))
    data: Any = {
        "json": lambda: draw(_json.filter(lambda d: d is not None)),
        "bytes": lambda: draw(st.binary(max_size=200)),
        "text": lambda: draw(_text),
        "none": lambda: None,
    }[kind]()
    content_type = {
        "json": draw(st.sampled_from([None, "application/json", "application/x+json"])),
        "bytes": "application/octet-stream",
        "text": "text/plain",
        "none": draw(st.sampled_from([None, "application/json"])),
    }[kind]
    return FACTORY.new(
        draw(st.sampled_from(["com.example.a", "com.example.b"]) | _text),
        draw(st.sampled_from(["/s", "/fleet/1"]) | _text | _long_text),
        data,
        id=draw(_text | _long_text),
        subject=draw(st.none() | _text),
        datacontenttype=content_type,
        dataschema=draw(st.none() | st.sampled_from(["urn:x:1", "urn:x:2"])),
        time=draw(_times),
        extensions=draw(st.dictionaries(_names, _extension_values, max_size=3)),
    )


def _rfc3339(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _expected_attributes(event: Any) -> dict[str, Any]:
    """The attributes read back: the Avro format carries datetime extensions as RFC 3339 text."""
    return {
        name: _rfc3339(value) if isinstance(value, datetime) and name != "time" else value
        for name, value in event.get_attributes().items()
    }


# --- the JSON-value data union -----------------------------------------------------------------


@SLOW
@given(_json)
def test_json_values_are_written_as_fastavro_writes_them(data: Any) -> None:
    """The direct JSON-value writer gives fastavro's bytes for every shape it holds, refuses the rest."""
    try:
        value = to_record_value(data)
    except NotRepresentable:
        with pytest.raises(NotRepresentable):
            json_value_bytes(data)
        return
    ours = json_value_bytes(data)
    assert b"\x00" + ours == _fastavro_write({"attribute": {}, "data": value})
    read, end = read_data(ours, 0)
    assert end == len(ours)
    assert _typed(read) == _typed(_record_data(_fastavro_read(b"\x00" + ours)))


def _blocked(value: Any, kind: str) -> bytes:
    """The JSON-value representation with every map and array written one item per block,
    alternately with a negative count and byte size."""
    if kind in ("map", "records-map"):
        items = [
            _string(k) + (_blocked(v, "record") if kind == "records-map" else _map_value(v))
            for k, v in value.items()
        ]
    elif kind == "record":
        items = [_string(k) + _record_value(v) for k, v in value.items()]
    else:  # an array of records
        items = [_blocked(v, "record") for v in value]
    out = b""
    for i, item in enumerate(items):
        out += zigzag(-1) + zigzag(len(item)) + item if i % 2 else zigzag(1) + item
    return out + b"\x00"


def _string(text: str) -> bytes:
    raw = text.encode()
    return zigzag(len(raw)) + raw


def _scalar(value: Any, indexes: tuple[int, int, int, int]) -> bytes | None:
    null, boolean, double, string = indexes
    if value is None:
        return zigzag(null)
    if type(value) is bool:
        return zigzag(boolean) + (b"\x01" if value else b"\x00")
    if type(value) in (int, float):
        return zigzag(double) + PACK_D(float(value))
    if type(value) is str:
        return zigzag(string) + _string(value)
    return None


def _map_value(value: Any) -> bytes:
    return _scalar(value, (0, 1, 3, 4)) or zigzag(2) + _blocked(value, "record")


def _record_value(value: Any) -> bytes:
    found = _scalar(value, (0, 1, 4, 5))
    if found is not None:
        return found
    if type(value) is list:
        return zigzag(3) + _blocked(value, "array")
    return zigzag(2) + _blocked(value, "records-map")


@SLOW
@given(_json.filter(lambda d: type(d) in (dict, list)))
def test_json_values_in_several_blocks_are_read(data: Any) -> None:
    """Maps and arrays written in blocks (with and without byte sizes) read as fastavro reads them."""
    try:
        to_record_value(data)
    except NotRepresentable:
        return
    body = zigzag(3) + _blocked(data, "map") if type(data) is dict else zigzag(4)
    if type(data) is list:
        body += _blocked(data, "array")
    record = _fastavro_read(b"\x00" + body)
    read, end = read_data(body, 0)
    assert end == len(body)
    assert _typed(read) == _typed(_record_data(record))


# --- whole events both ways ------------------------------------------------------------------


@SLOW
@given(_events())
def test_events_round_trip_and_fastavro_agrees_both_ways(event: Any) -> None:
    """fastavro reads our bytes and writes them back byte for byte; we read fastavro's, in any order."""
    body = to_avro(event)
    record = _fastavro_read(body)
    assert _fastavro_write(record) == body
    for _ in range(2):  # the second read takes the memoised runs
        back = from_avro(body)
        assert back.get_attributes() == _expected_attributes(event)
        assert _typed(back.get_data()) == _typed(from_avro(_fastavro_write(record)).get_data())
    assert back.get_data() == event.get_data()
    in_event_order = from_avro(_fastavro_write(to_avro_record(event)))
    assert in_event_order.get_attributes() == back.get_attributes()
    assert _typed(in_event_order.get_data()) == _typed(back.get_data())
    extensions = [v for k, v in event.get_attributes().items() if k not in STANDARD]
    assert read_avro_checked_any(body)[2] == ("" in extensions)  # suspect only for empty text


@SLOW
@given(_events(), st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_attribute_maps_in_several_blocks_are_read(event: Any, sizes: list[int]) -> None:
    """An attribute map split into blocks, some with a negative count and byte size, reads the same."""
    record = _fastavro_read(to_avro(event))
    entries = [
        _fastavro_write({"attribute": {k: v}, "data": None})[1:-2]
        for k, v in record["attribute"].items()
    ]
    body, i = b"", 0
    for n, size in enumerate(sizes * len(entries)):
        chunk = b"".join(entries[i : i + size])
        count = len(entries[i : i + size])
        if not count:
            break
        body += zigzag(-count) + zigzag(len(chunk)) + chunk if n % 2 else zigzag(count) + chunk
        i += size
    body += b"\x00" + _fastavro_write({"attribute": {}, "data": record["data"]})[1:]
    assert _fastavro_read(body) == record
    assert from_avro(body).get_attributes() == from_avro(to_avro(event)).get_attributes()


@SLOW
@given(
    _datetimes,
    st.integers(0, 3_000_000),
)
def test_times_are_written_as_isoformat_writes_them(when: datetime, step: int) -> None:
    """Time and datetime extensions are the RFC 3339 text of isoformat, also from a memoised second."""
    for instant in (when, when + timedelta(microseconds=step), when.replace(microsecond=0)):
        attrs = {"specversion": "1.0", "id": "i", "source": "/s", "type": "t", "time": instant}
        body = write_avro({**attrs, "seen": instant}, None)
        text = _rfc3339(instant)
        assert _fastavro_read(body)["attribute"] == {**attrs, "time": text, "seen": text}
        assert write_avro({**attrs, "seen": instant}, None) == body
        assert from_avro(body).get_time() == instant


# --- validation only when suspect ------------------------------------------------------------

_attribute_names = st.sampled_from(
    [*STANDARD, "time", "partitionkey", "seq", "Bad-Name", "data", "x" * 21, ""]
)
_attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from(["", "1.0", "0.3", "x", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "now"]),
    st.binary(max_size=3),
)
_valid = {"specversion": "1.0", "id": "i", "source": "/s", "type": "t"}


@SLOW
@given(st.dictionaries(_attribute_names, _attribute_values, max_size=8), st.booleans())
def test_any_attribute_map_gets_the_report_validate_attributes_gives(
    changes: dict[str, Any], start_valid: bool
) -> None:
    """Whatever the attribute map holds, decoding gives the event or the report a full validation gives."""
    attrs = {**_valid, **changes} if start_valid else changes
    body = _fastavro_write({"attribute": attrs, "data": None})
    reference = _reference(body)
    _same_outcome(_outcome(from_avro, body), reference)
    _same_outcome(_outcome(from_avro, body), reference)  # again, through the memoised runs


@pytest.mark.parametrize(
    "attrs",
    [
        {**_valid, "id": ""},
        {**_valid, "seq": 2**31},
        {**_valid, "seq": -(2**31) - 1},
        {**_valid, "Bad": "x"},
        {**_valid, "time": "2026-11-27T13:00:00"},
        {**_valid, "specversion": "0.3"},
        {"id": "i", "source": "/s", "type": "t"},
    ],
    ids=[
        "empty-id",
        "int-too-big",
        "int-too-small",
        "bad-name",
        "naive-time",
        "spec-0.3",
        "no-spec",
    ],
)
def test_typed_decoding_reports_what_validation_reports(attrs: dict[str, Any]) -> None:
    """Schema-encoded events with a suspect attribute get validate_attributes' report, as before."""
    registry = SchemaRegistry("memory:")
    registry.register("t", {"type": "record", "name": "R", "fields": []}, kind="avro")
    uri = registry.latest("t").uri
    body = write_avro(attrs, b"", "application/avro", uri)
    expected = {**attrs, "datacontenttype": "application/json", "dataschema": uri}
    parse_time(expected)
    with pytest.raises(EventValidationError) as reference:
        validate_attributes(expected, {}, check_data=False)
    with pytest.raises(EventValidationError) as raised:
        TypedFormat(registry, "avro").decode(body)
    assert raised.value.problems == reference.value.problems
    with pytest.raises(EventValidationError) as plain:
        from_avro(body)
    assert {p.field for p in plain.value.problems} == {p.field for p in raised.value.problems}


def test_repeated_names_keep_the_last_value_and_are_checked() -> None:
    """A map naming an attribute twice keeps the later value, which is validated like any other."""
    entry = _fastavro_write({"attribute": {"id": ""}, "data": None})[1:-2]
    body = to_avro(FACTORY.new("t", "/s"))
    twice = zigzag(1) + entry + body  # a block with the empty id, then the writer's own map
    assert read_avro(twice)[0]["id"] == "id-1"
    again = body[:-2] + zigzag(1) + entry + body[-2:]  # the writer's map, then the empty id
    with pytest.raises(EventValidationError) as raised:
        from_avro(again)
    assert [p.field for p in raised.value.problems] == ["id"]


# --- memoised runs -----------------------------------------------------------------------------


def test_head_and_source_runs_are_taken_only_when_their_bytes_match() -> None:
    """Events alternating type, content type, schema and source (some prefixes of others) read back their own."""
    events = [
        FACTORY.new("t", "/s", {"k": 1.5}, dataschema="urn:x:1"),
        FACTORY.new("tt", "/s", {"k": 1.5}, dataschema="urn:x:1"),
        FACTORY.new("t", "/s/2", {"k": 1.5}),
        FACTORY.new("t", "/s", b"\x01", datacontenttype="application/octet-stream"),
        FACTORY.new("t", "/", "x", datacontenttype="text/plain", subject="s"),
    ]
    for event in events + events[::-1] + events[::2] * 2:
        body = to_avro(event)
        assert from_avro(body).get_attributes() == event.get_attributes()
        assert _fastavro_read(body)["attribute"]["type"] == event.get_type()


def test_a_head_longer_than_the_first_block_is_not_taken() -> None:
    """The memoised head is used only when the map's first block holds all of its entries."""
    event = FACTORY.new("t", "/s", None)
    body = to_avro(event)
    from_avro(body)  # remember the head (specversion, type)
    spec = _fastavro_write({"attribute": {"specversion": "1.0"}, "data": None})[1:-2]
    assert body[1:].startswith(spec)
    # the head's bytes follow a block of one entry: type's key length reads as a count of 4
    blocked = zigzag(1) + body[1:]
    with pytest.raises(EventValidationError) as raised:
        from_avro(blocked)
    assert raised.value.problems[0].field == "body"


def test_typed_and_plain_writes_interleave() -> None:
    """Writes with replaced content type and schema, and plain ones, each carry their own head."""
    attrs = dict(FACTORY.new("t", "/s", {"k": 1}, dataschema="urn:x:1").get_attributes())
    plain = write_avro(attrs, b"{}")
    typed = write_avro(attrs, b"\x00", "application/avro", "urn:x:2")
    for body, content_type, schema in (
        (plain, "application/json", "urn:x:1"),
        (typed, "application/avro", "urn:x:2"),
        (plain, "application/json", "urn:x:1"),
    ):
        assert write_avro(attrs, b"{}") == plain
        record = _fastavro_read(body)["attribute"]
        assert (record["datacontenttype"], record["dataschema"]) == (content_type, schema)
        back = read_avro(body)[0]
        assert (back["datacontenttype"], back["dataschema"]) == (content_type, schema)


@pytest.mark.parametrize(
    "attrs",
    [
        {**_valid, "subject": None, "time": None, "x": None},
        {**_valid, "id": 7, "subject": b"\x01"},
        {**_valid, "time": "2026-11-27T13:00:00Z"},
        {**_valid, "specversion": None, "type": None},
        {**_valid, "datacontenttype": 5},
    ],
    ids=["nones", "odd-types", "text-time", "no-head", "odd-head"],
)
def test_unusual_attribute_values_take_the_general_writer(attrs: dict[str, Any]) -> None:
    """Nones are left out and other value types get their union branch, readable by fastavro."""
    record = _fastavro_read(write_avro(attrs, None))["attribute"]
    assert record == {k: v for k, v in attrs.items() if v is not None}


# --- junk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [{"a": 1.5, "b": {"c": [{"d": None}]}}, [{"a": True}], b"\x00" * 300, "text", None]
)
def test_every_truncation_and_trailing_byte_is_a_body_error(data: Any) -> None:
    """A body cut short anywhere, or with a byte after the record, names the body in its error."""
    content_type = {bytes: "application/octet-stream", str: "text/plain"}.get(type(data))
    body = to_avro(FACTORY.new("t", "/s", data, datacontenttype=content_type, subject="s"))
    for bad in [body[:end] for end in range(len(body))] + [body + b"\x00"]:
        with pytest.raises(EventValidationError) as raised:
            from_avro(bad)
        assert raised.value.problems[0].field == "body"


@pytest.mark.parametrize(
    "body",
    [
        b"\x02\x01id\x06\x02i\x00\x02",
        b"\x00\x00\x03ab",
        b"\x00\x0c\x01",
        b"\x00\x06\x02\x01a\x00\x00",
    ],
    ids=["name", "data", "text", "data-key"],
)
def test_negative_lengths_are_refused(body: bytes) -> None:
    """A length whose zig-zag is odd (negative) is junk on every path, as fastavro finds it."""
    with pytest.raises(EventValidationError):
        from_avro(body)
    with pytest.raises((EOFError, ValueError)):
        _fastavro_read(body)


@settings(max_examples=300, deadline=None)
@given(_events(), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_bodies_read_as_fastavro_reads_them_or_not_at_all(
    event: Any, where: int, byte: int
) -> None:
    """A body with one byte changed is refused, or read to the attributes and data fastavro reads."""
    body = bytearray(to_avro(event))
    body[where % len(body)] = byte
    from_avro(to_avro(event))  # the memos hold the original's runs
    try:
        attrs, data = read_avro(bytes(body))
    except Exception:  # junk: read_avro_any turns whatever the reader raises into the body error
        return
    record = _fastavro_read(bytes(body))
    assert _typed(attrs) == _typed(record["attribute"])
    assert _typed(data) == _typed(_record_data(record))


def test_memos_are_bounded_and_refilled() -> None:
    """Thousands of distinct extension names and seconds clear the memos, which refill correctly."""
    for i in range(4200):
        event = FACTORY.new(
            f"t{i % 3}",
            f"/s/{i}",
            {"k": i},
            time=T0 + timedelta(seconds=i, microseconds=i + 1),
            extensions={f"x{i}": i, "p": "v"},
        )
        if i % 700 == 0 or i > 4090:
            body = to_avro(event)
            assert from_avro(body).get_attributes() == event.get_attributes()
            assert _fastavro_read(body)["attribute"][f"x{i}"] == i
        else:
            from_avro(to_avro(event))


def test_ints_beyond_a_double_travel_as_json_text() -> None:
    """An int no double holds is not representable as a JSON value: its JSON text carries it exactly."""
    data = {"big": 10**400, "n": 1}
    with pytest.raises(NotRepresentable):
        to_record_value(data)
    with pytest.raises(NotRepresentable):
        json_value_bytes(data)
    body = to_avro(FACTORY.new("t", "/s", data))
    assert _fastavro_read(body)["data"] == b'{"big":' + str(10**400).encode() + b',"n":1}'
    assert from_avro(body).get_data() == data


def test_an_array_key_seen_before_sends_only_arrays_to_json_text() -> None:
    """After an object with a top-level array, objects with something else under that key stay JSON values."""
    shapes = [({"lines": [1], "a": 1.5}, bytes), ({"lines": 2.5}, dict), ({"a": 1.5}, dict)]
    for data, branch in [*shapes, ({"b": [{}]}, bytes), *shapes]:
        body = to_avro(FACTORY.new("t", "/s", data))
        assert type(_fastavro_read(body)["data"]) is branch
        assert from_avro(body).get_data() == data


class _Stamp(datetime):
    """A datetime subclass whose str() is not RFC 3339 (as pandas' Timestamp's is not)."""

    def __str__(self) -> str:
        return "not RFC 3339"


def test_datetime_subclasses_are_written_as_rfc3339() -> None:
    """A time or extension of a datetime subclass is written as isoformat text, not its str()."""
    stamp = _Stamp(2026, 11, 27, 13, 0, 0, 5, tzinfo=UTC)
    body = write_avro({**_valid, "time": stamp, "seen": stamp}, None)
    record = _fastavro_read(body)["attribute"]
    assert record["time"] == record["seen"] == "2026-11-27T13:00:00.000005Z"
    assert from_avro(body).get_time() == stamp
