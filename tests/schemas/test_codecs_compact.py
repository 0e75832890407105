"""The CloudEvents Avro Compact format: round trips, fastavro interop both ways, typed data."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybus.core.codecs import decode, encode
from polybus.core.codecs.avro_compact import (
    CLOUDEVENT_COMPACT_AVSC,
    CONTENT_TYPE,
    from_avro_compact,
    read_compact,
    to_avro_compact,
    write_compact,
)
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory
from polybus.core.schemas import SchemaRegistry
from polybus.core.schemas.typed import TypedFormat

T0 = datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)
SCHEMA = fastavro.parse_schema(CLOUDEVENT_COMPACT_AVSC)
TYPED_SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "deviceId", "type": "string"},
        {"name": "temperature", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
EXTENSIONS = {"flag": True, "off": False, "count": -7, "big": 2**31 - 1, "raw": b"\x00\xff"}


def _event(data: Any = None, **extra: Any) -> Any:
    return FACTORY.new(
        "com.example.t",
        "/s/ü",
        data,
        subject="sub",
        dataschema="urn:polybus:schema:com.example.t:1",
        extensions={**EXTENSIONS, "stamp": T0, "text": "ünï"},
        **extra,
    )


def _fastavro_read(body: bytes) -> Any:
    stream = io.BytesIO(body)
    record = fastavro.schemaless_reader(stream, SCHEMA, None)
    assert stream.tell() == len(body)
    return record


def _fastavro_write(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, record)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        (None, {}),
        ({"a": 1, "b": [1, 2.5, "x", None, True], "c": {"d": {"e": []}}}, {}),
        ([1, "two", {"three": 3}], {"datacontenttype": "application/json"}),
        ("a JSON string", {"datacontenttype": "application/json"}),
        (42, {"datacontenttype": "application/vnd.example+json"}),
        (b"\x00\x01binary", {"datacontenttype": "application/octet-stream"}),
        ("plain text ü", {"datacontenttype": "text/plain"}),
        ({"k": "v"}, {"time": datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))}),
        ({"k": "v"}, {"time": datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC)}),
    ],
    ids=[
        "none",
        "json-object",
        "json-array",
        "json-string",
        "json-number",
        "bytes",
        "text",
        "time-offset",
        "time-before-epoch",
    ],
)
def test_round_trip_gives_an_equal_event(data: Any, extra: dict[str, Any]) -> None:
    """Every data kind and attribute type (extensions of each map branch) comes back equal."""
    event = _event(data, **extra)
    back = from_avro_compact(to_avro_compact(event))
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == event.get_data()
    assert type(back.get_data()) is type(event.get_data())
    assert back.get_attributes()["time"].utcoffset() == timedelta(0)


def test_minimal_event_writes_nulls_and_an_empty_map() -> None:
    """No optional attribute, no extension, no data: three strings, five null bytes and a null."""
    event = FACTORY.new("t", "s", id="i", time=None)
    attrs = dict(event.get_attributes())
    attrs.pop("time", None)
    body = write_compact(attrs, None)
    assert body == b"\x02i\x02s\x02t" + b"\x00" * 5 + b"\x02"
    assert read_compact(body) == (
        {"specversion": "1.0", "id": "i", "source": "s", "type": "t"},
        None,
    )


def test_other_string_data_comes_back_as_bytes() -> None:
    """The format has bytes only: str data of a non-text, non-JSON type is read back as its UTF-8."""
    event = _event("<a/>", datacontenttype="application/xml")
    assert from_avro_compact(to_avro_compact(event)).get_data() == b"<a/>"


def test_long_strings_and_data_take_the_general_path() -> None:
    """Strings and data of 1 KiB and more (multi-byte lengths) round trip and match fastavro."""
    event = FACTORY.new(
        "t" * 3000,
        "/s",
        b"x" * 70000,
        subject="s" * 1024,
        datacontenttype="application/octet-stream",
        extensions={"long": "l" * 5000},
    )
    body = to_avro_compact(event)
    assert from_avro_compact(body).get_attributes() == event.get_attributes()
    assert _fastavro_read(body)["attributes"] == {"long": "l" * 5000}
    assert body == _fastavro_write(_fastavro_read(body))


def test_fastavro_reads_what_we_write() -> None:
    """fastavro, given the spec's compact schema, reads every field with its logical type."""
    event = _event({"k": 1})
    record = _fastavro_read(to_avro_compact(event))
    assert record == {
        "id": "id-1",
        "source": "/s/ü",
        "type": "com.example.t",
        "datacontenttype": "application/json",
        "dataschema": "urn:polybus:schema:com.example.t:1",
        "subject": "sub",
        "time": T0,
        "attributes": {**EXTENSIONS, "stamp": T0, "text": "ünï"},
        "data": b'{"k":1}',
    }


def test_we_read_what_fastavro_writes() -> None:
    """A record fastavro writes with the spec's schema is read as the event, and written back the same."""
    record = {
        "id": "x-1",
        "source": "https://example.com/src",
        "type": "com.example.object.deleted.v2",
        "datacontenttype": "application/json",
        "dataschema": None,
        "subject": "mynewfile.jpg",
        "time": datetime(2023, 5, 26, 17, 21, 29, 691000, tzinfo=UTC),
        "attributes": {"n": 3, "ok": True, "at": T0, "blob": b"\x01", "s": "v", "gone": None},
        "data": b'{"deleted": true}',
    }
    body = _fastavro_write(record)
    event = from_avro_compact(body)
    attrs = event.get_attributes()
    assert attrs["time"] == record["time"]
    assert {k: attrs[k] for k in ("n", "ok", "at", "blob", "s")} == {
        "n": 3,
        "ok": True,
        "at": T0,
        "blob": b"\x01",
        "s": "v",
    }
    assert "gone" not in attrs and "dataschema" not in attrs
    assert event.get_data() == {"deleted": True}
    present = {k: v for k, v in record["attributes"].items() if v is not None}
    again = {**record, "attributes": present, "data": b'{"deleted":true}'}  # compact JSON
    assert _fastavro_read(to_avro_compact(event)) == again


def test_fastavro_blocked_maps_are_read() -> None:
    """A map written as a block with its byte size (negative count) is read as any other."""
    body = _fastavro_write({"id": "i", "source": "s", "type": "t", "attributes": {}, "data": None})
    head, tail = body[:-2], body[-1:]
    blocked = head + b"\x01" + b"\x0c" + b"\x02a\x08\x02b" + b"\x00" + tail  # count -1, size 6
    assert read_compact(blocked)[0]["a"] == "b"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x02i",
        b"\x02i\x02s\x02t\x06",
        b"\x02i\x02s\x02t" + b"\x00" * 5 + b"\x02\x00",
        b"\x02i\x02s\x02t" + b"\x00" * 5 + b"\x04",
        b"\x04\xff\xfe\x02s\x02t" + b"\x00" * 5 + b"\x02",
    ],
    ids=["empty", "truncated", "bad-union", "trailing-bytes", "bad-data-branch", "bad-utf8"],
)
def test_junk_is_an_event_validation_error(body: bytes) -> None:
    """Anything that is not the compact record raises EventValidationError naming the body."""
    with pytest.raises(EventValidationError) as raised:
        from_avro_compact(body)
    assert raised.value.problems[0].field == "body"


def test_other_spec_versions_are_refused() -> None:
    """The compact schema is for spec version 1.0 only: writing another one is refused."""
    with pytest.raises(EventValidationError):
        write_compact({"specversion": "0.3", "id": "i", "source": "s", "type": "t"}, None)


def test_format_is_chosen_by_name_and_content_type() -> None:
    """core.codecs knows the format as 'avro-compact' and by its content type."""
    event = _event({"k": 1})
    content_type, body = encode(event, "avro-compact")
    assert content_type == CONTENT_TYPE == "application/cloudevents+avro-compact"
    assert decode(content_type, body).get_attributes() == event.get_attributes()


def test_typed_data_travels_as_avro_binary_of_the_registered_schema() -> None:
    """TypedFormat('avro-compact') puts the schema's Avro binary in data and reads JSON data back."""
    registry = SchemaRegistry("memory:")
    uri = registry.register("com.example.t", TYPED_SCHEMA, kind="avro").uri
    codec = TypedFormat(registry, "avro-compact")
    data = {"deviceId": "d-1", "temperature": 21.5, "tags": ["a", "b"], "note": None}
    event = FACTORY.new("com.example.t", "/s", data, dataschema=uri, extensions={"x": 1})
    body = codec.encode(event)
    record = _fastavro_read(body)
    assert record["datacontenttype"] == "application/avro"
    assert (
        fastavro.schemaless_reader(
            io.BytesIO(record["data"]), fastavro.parse_schema(TYPED_SCHEMA), None
        )
        == data
    )
    back = codec.decode(body)
    assert back.get_data() == data
    assert back.get_attributes() == {
        **event.get_attributes(),
        "datacontenttype": "application/json",
    }


@pytest.mark.parametrize(
    "attrs",
    [
        {"id": "i", "source": "s", "type": "t", "x": "ext"},
        {"specversion": "1.0", "id": "i", "source": "s", "type": "t", "subject": None, "x": 1},
        {"id": "i", "source": "s", "type": "t", "time": None, "subject": "sub", "flag": True},
    ],
    ids=["no-specversion", "explicit-none", "none-time"],
)
def test_extensions_are_written_whatever_else_is_absent(attrs: dict[str, Any]) -> None:
    """An extension is written even when specversion is missing or standard attributes are None."""
    expected = {k: v for k, v in attrs.items() if v is not None and k != "specversion"}
    back, _ = read_compact(write_compact(attrs, None))
    assert {k: v for k, v in back.items() if k != "specversion"} == expected
    assert _fastavro_read(write_compact(attrs, None))["attributes"] == {
        k: v for k, v in expected.items() if k not in ("id", "source", "type", "subject")
    }


@pytest.mark.parametrize(
    "body",
    [
        b"\x01i\x02s\x02t" + b"\x00" * 5 + b"\x02",
        b"\x02i\x02s\x02t" + b"\x00" * 5 + b"\x00\x03x",
        b"\x02i\x02s\x02t" + b"\x00" * 5 + b"\x00\x81\x01" + b"x" * 64,
    ],
    ids=["negative-id-length", "negative-data-length", "negative-two-byte-data-length"],
)
def test_negative_lengths_are_refused(body: bytes) -> None:
    """A length whose zig-zag says negative is junk, in the one- and two-byte fast paths too."""
    with pytest.raises(EventValidationError):
        from_avro_compact(body)


def test_data_lengths_of_one_two_and_three_bytes_round_trip() -> None:
    """Data of 63, 64, 8191 and 8192 bytes (varint length boundaries) comes back whole."""
    for size in (63, 64, 8191, 8192):
        event = _event(b"d" * size, datacontenttype="application/octet-stream")
        assert from_avro_compact(to_avro_compact(event)).get_data() == b"d" * size


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=3_000_000),
)
def test_times_read_back_exactly_through_the_memoised_paths(when: datetime, step: int) -> None:
    """Times and time extensions read back to the microsecond, also when the memo already holds their second."""
    for instant in (when, when + timedelta(microseconds=step), when - timedelta(microseconds=step)):
        event = FACTORY.new("t", "/s", None, time=instant, extensions={"seen": instant})
        body = to_avro_compact(event)
        for _ in range(2):  # the second read takes the memoised high bytes
            back = from_avro_compact(body).get_attributes()
            assert back["time"] == instant and back["seen"] == instant
        assert _fastavro_read(body)["time"] == instant


def test_a_repeated_header_is_read_from_the_last_one_only_when_bytes_match() -> None:
    """Events alternating between two types read back their own type and schema, whatever the source."""
    first = FACTORY.new("com.example.a", "/a", {"k": 1}, dataschema="urn:x:a")
    second = FACTORY.new("com.example.b", "/a", {"k": 1}, dataschema="urn:x:b")
    third = FACTORY.new("com.example.b", "/b", {"k": 1}, dataschema="urn:x:b")
    for event in (first, second, first, first, second, third, second):
        back = from_avro_compact(to_avro_compact(event)).get_attributes()
        assert back == event.get_attributes()


def test_header_overrides_and_plain_writes_interleave() -> None:
    """Writes with replaced content type and schema, and plain ones, each carry their own header."""
    attrs = dict(_event({"k": 1}).get_attributes())
    plain = write_compact(attrs, b"{}")
    typed = write_compact(attrs, b"\x00", "application/avro", "urn:x:2")
    for body, content_type, schema in (
        (plain, attrs["datacontenttype"], attrs["dataschema"]),
        (typed, "application/avro", "urn:x:2"),
    ):
        assert write_compact(attrs, b"{}") == plain
        back, _ = read_compact(body)
        assert (back.get("datacontenttype"), back["dataschema"]) == (content_type, schema)
        record = _fastavro_read(body)
        assert (record["datacontenttype"], record["dataschema"]) == (content_type, schema)
