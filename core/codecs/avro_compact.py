"""The CloudEvents Avro Compact format (cloudevents/spec formats/avro-compact-format.md).

Content type ``application/cloudevents+avro-compact``. One fixed record,
``cloudevents-compact.avsc``: the standard attributes are fields in a fixed
order (no names on the wire), ``time`` is a ``timestamp-micros`` long,
``specversion`` is not written (always 1.0), extensions go into the
``attributes`` map, and ``data`` is ``bytes`` or null. The format has no JSON
data branch: JSON data travels as its UTF-8 JSON text and is parsed back on
read because the datacontenttype says JSON; text (``text/*``) comes back as a
str; any other data stays bytes. A time with a UTC offset other than zero
comes back as the same instant in UTC (the wire holds only the instant).

Written and read directly against the fixed schema, without generic schema
interpretation; tests check the bytes both ways against fastavro.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.codecs.avro_timestamp import (
    HIGH_TIMES,
    STEP0,
    STEP1,
    STEP2,
    read_time,
    write_timestamp,
)
from polybus.core.codecs.avro_wire import (
    HALF,
    ZZ,
    avro_string,
    long_bytes,
    read_length,
    read_long,
    read_text,
    zigzag,
)
from polybus.core.codecs.wire import remember
from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import INT32, build_event, is_extension_name, validate_attributes
from polybus.core.formats import dumps_json, is_json_content_type, loads_json

CONTENT_TYPE = "application/cloudevents+avro-compact"
SPECVERSION = "1.0"

CLOUDEVENT_COMPACT_AVSC: dict[str, Any] = {
    "namespace": "io.cloudevents.v1.avro.compact",
    "type": "record",
    "name": "CloudEvent",
    "version": "1.0",
    "doc": "Avro Compact Event Format for CloudEvents",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "datacontenttype", "type": ["null", "string"], "default": None},
        {"name": "dataschema", "type": ["null", "string"], "default": None},
        {"name": "subject", "type": ["null", "string"], "default": None},
        {
            "name": "time",
            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            "default": None,
        },
        {
            "name": "attributes",
            "type": {
                "type": "map",
                "values": [
                    "null",
                    "boolean",
                    "int",
                    {"type": "long", "logicalType": "timestamp-micros"},
                    "string",
                    "bytes",
                ],
            },
            "default": {},
        },
        # As in the spec's file (a string default on a bytes-first union); defaults are not on the wire.
        {"name": "data", "type": ["bytes", "null"], "default": "null"},
    ],
}

_STANDARD = frozenset(
    ("id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject", "time")
)
_NULL, _ONE = b"\x00", b"\x02"  # union branch 0 (null) and 1 (the value) of ["null", X]
# attributes map value branches: null, boolean, int, timestamp-micros, string, bytes
_EXT_BOOL, _EXT_INT, _EXT_TIME, _EXT_STRING, _EXT_BYTES = (
    b"\x02",
    b"\x04",
    b"\x06",
    b"\x08",
    b"\x0a",
)


# Extension names, and the top bytes of timestamps, repeat from event to event: written
# from bounded memos of their encoded bytes (cleared when full), one dict lookup each.
_STRINGS: dict[str, bytes] = {}  # extension name -> Avro string (length, UTF-8)


def _memo_string(value: str) -> bytes:
    return remember(_STRINGS, value, avro_string(value))


_STRING_NAMES: dict[str, bytes] = {}  # extension name -> its Avro string, then the string branch


def _memo_string_name(name: str) -> bytes:
    return remember(_STRING_NAMES, name, avro_string(name) + _EXT_STRING)


def _extensions(attrs: Mapping[str, Any], names: set[str]) -> bytes:
    parts = [long_bytes(len(names))]
    add = parts.append
    strings, string_names = _STRINGS, _STRING_NAMES
    for name in names:
        value = attrs[name]
        kind = type(value)
        if kind is str:
            raw = value.encode()
            add(string_names.get(name) or _memo_string_name(name))
            add(ZZ[len(raw) + HALF] if len(raw) < HALF else zigzag(len(raw)))
            add(raw)
            continue
        add(strings.get(name) or _memo_string(name))
        if kind is bool:
            add(b"\x02\x01" if value else b"\x02\x00")
        elif kind is int:
            add(_EXT_INT)
            add(long_bytes(value))
        elif kind is bytes:
            add(_EXT_BYTES)
            add(long_bytes(len(value)))
            add(value)
        elif isinstance(value, datetime):
            add(_EXT_TIME)
            add(write_timestamp(value))
        elif value is None:
            add(_NULL)
        else:
            add(_EXT_STRING)
            add(avro_string(str(value)))
    add(_NULL)
    return b"".join(parts)


# The header (type, datacontenttype, dataschema) last written: those three values and
# their bytes. A stream of one event type writes it from here.
_last_written: tuple[Any, Any, Any, bytes] = (None, None, None, b"")


def _header(type_: str, content_type: str | None, schema: str | None) -> bytes:
    """The bytes of type, datacontenttype and dataschema; remembered as the last written."""
    global _last_written
    header = b"".join(
        (
            avro_string(type_),
            _NULL if content_type is None else _ONE + avro_string(content_type),
            _NULL if schema is None else _ONE + avro_string(schema),
        )
    )
    _last_written = (type_, content_type, schema, header)
    return header


def write_compact(
    attrs: Mapping[str, Any],
    data: bytes | None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
) -> bytes:
    """The Avro binary of the compact record for these attributes and data bytes (or None).

    A `datacontenttype` or `dataschema` given here replaces the attribute's own
    (schema-encoded data), without copying the attributes.
    """
    get = attrs.get
    if get("specversion", SPECVERSION) != SPECVERSION:
        raise EventValidationError(
            "not representable in the Avro Compact format",
            [Problem("specversion", get("specversion"), "must be '1.0'")],
        )
    type_ = attrs["type"]
    content_type = get("datacontenttype") if datacontenttype is None else datacontenttype
    schema = get("dataschema") if dataschema is None else dataschema
    subject, time = get("subject"), get("time")
    last = _last_written
    if type_ == last[0] and content_type == last[1] and schema == last[2]:
        header = last[3]
    else:
        header = _header(type_, content_type, schema)
    try:  # lengths from the table; a string of 1 KiB or more takes the general path below
        raw_id = attrs["id"].encode()
        raw_source = attrs["source"].encode()
        if subject is None:
            subject_part = _NULL
        else:
            raw = subject.encode()
            subject_part = _ONE + ZZ[len(raw) + HALF] + raw
        # data branch 1 (null) or 0 (bytes) with the length
        data_part = b"\x02" if data is None else b"\x00" + ZZ[len(data) + HALF]
        # standard keys with a value; more keys than those means extensions (or explicit Nones)
        standard = (
            ("specversion" in attrs)
            + 6
            - (get("datacontenttype") is None)
            - (get("dataschema") is None)
            - (subject is None)
            - (time is None)
        )
        if len(attrs) > standard:
            names = attrs.keys() - _STANDARD
            extensions = _extensions(attrs, names) if names else _NULL
        else:
            extensions = _NULL
    except IndexError:
        if datacontenttype is not None or dataschema is not None:
            attrs = {**attrs}
            attrs.update(
                (k, v)
                for k, v in (("datacontenttype", datacontenttype), ("dataschema", dataschema))
                if v is not None
            )
        return _write_general(attrs, data)
    return b"".join(
        (
            ZZ[len(raw_id) + HALF],
            raw_id,
            ZZ[len(raw_source) + HALF],
            raw_source,
            header,
            subject_part,
            _NULL if time is None else _ONE,
            b"" if time is None else write_timestamp(time),
            extensions,
            data_part,
            b"" if data is None else data,
        )
    )


def _write_general(attrs: Mapping[str, Any], data: bytes | None) -> bytes:
    get = attrs.get
    out = avro_string(attrs["id"]) + avro_string(attrs["source"]) + avro_string(attrs["type"])
    for name in ("datacontenttype", "dataschema", "subject"):
        value = get(name)
        out += _NULL if value is None else _ONE + avro_string(value)
    time = get("time")
    out += _NULL if time is None else _ONE + write_timestamp(time)
    names = attrs.keys() - _STANDARD
    out += _extensions(attrs, names) if names else _NULL
    if data is None:
        return out + b"\x02"
    return out + b"\x00" + long_bytes(len(data)) + data


def data_bytes(event: CloudEvent) -> bytes | None:
    """The event's data as the compact format carries it: bytes, JSON text or UTF-8 text."""
    data = event.get_data()
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if is_json_content_type(event.get_attributes().get("datacontenttype")):
        return dumps_json(data).encode()
    return (data if isinstance(data, str) else str(data)).encode()


def to_avro_compact(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Avro Compact format (schemaless Avro binary)."""
    return write_compact(event.get_attributes(), data_bytes(event))


def read_compact(buf: bytes) -> tuple[dict[str, Any], bytes | None]:
    """(attributes with specversion and time as a datetime, data bytes or None)."""
    attrs, data, _ = read_compact_checked(buf)
    return attrs, data


# The header (type, datacontenttype, dataschema) last read, as bytes, and its values.
_last_header: tuple[bytes, dict[str, str]] = (b"", {})


def _read_header(buf: bytes, pos: int, attrs: dict[str, Any]) -> tuple[int, bool]:
    """Read type, datacontenttype and dataschema at `pos`: (the end, whether suspect)."""
    global _last_header
    start, values = pos, {}
    values["type"], pos = read_text(buf, pos)
    suspect = not values["type"]
    for name in ("datacontenttype", "dataschema"):
        branch = buf[pos]
        if branch == 2:
            values[name], pos = read_text(buf, pos + 1)
            suspect = suspect or not values[name]
        elif branch:
            raise ValueError(f"{name} union index {branch >> 1} out of range")
        else:
            pos += 1
    attrs.update(values)
    if not suspect:
        _last_header = (buf[start:pos], values)
    return pos, suspect


def read_compact_checked(buf: bytes) -> tuple[dict[str, Any], bytes | None, bool]:
    """`read_compact`, plus whether the attributes need `validate_attributes`.

    The record already fixes every attribute's type; what it cannot rule out is
    an empty string, a bad extension name or an out-of-range int. The flag is
    False only when none of those is present, so a caller may skip validation.
    """
    size = buf[0]  # id: a length under 64 is one byte
    if size < 128 and not size & 1:
        pos = 1
        size >>= 1
    else:
        size, pos = read_length(buf, 0)
    end = pos + size
    attrs: dict[str, Any] = {"specversion": SPECVERSION, "id": buf[pos:end].decode()}
    suspect = not size
    size = buf[end]  # source
    if size < 128 and not size & 1:
        pos = end + 1
        size >>= 1
    else:
        size, pos = read_length(buf, end)
    end = pos + size
    attrs["source"] = buf[pos:end].decode()
    suspect = suspect or not size
    # type, datacontenttype, dataschema: the same bytes as the last event's more often
    # than not (a stream of one event type); then their values are taken as they are.
    header, values = _last_header
    if buf.startswith(header, end) and header:
        attrs.update(values)
        end += len(header)
    else:
        end, odd = _read_header(buf, end, attrs)
        suspect = suspect or odd
    branch = buf[end]  # subject
    if branch == 2:
        size = buf[end + 1]
        if size < 128 and not size & 1:
            pos = end + 2
            size >>= 1
        else:
            size, pos = read_length(buf, end + 1)
        end = pos + size
        if end > len(buf):
            raise ValueError("string runs past the end")
        attrs["subject"] = buf[pos:end].decode()
        suspect = suspect or not size
    elif branch:
        raise ValueError(f"subject union index {branch >> 1} out of range")
    else:
        end += 1
    pos = end
    branch = buf[pos]
    if branch == 2:  # read_time, inlined for the common case
        base = HIGH_TIMES.get(buf[pos + 4 : pos + 9])
        b0, b1, b2 = buf[pos + 1], buf[pos + 2], buf[pos + 3]
        if base is not None and b0 & b1 & b2 & 128 and not b0 & 1:
            attrs["time"] = base + STEP0[b0 & 127] + STEP1[b1 & 127] + STEP2[b2 & 127]
            pos += 9
        else:
            attrs["time"], pos = read_time(buf, pos + 1)
    elif branch:
        raise ValueError(f"time union index {branch >> 1} out of range")
    else:
        pos += 1
    if buf[pos]:
        pos, odd = _read_extensions(buf, pos, attrs)
        suspect = suspect or odd
    else:
        pos += 1
    branch = buf[pos]
    if branch == 0:
        size = buf[pos + 1]
        if size < 128 and not size & 1:  # data under 64 bytes
            pos += 2
            size >>= 1
        elif size & 129 == 128 and buf[pos + 2] < 128:  # two bytes: under 8 KiB
            size = (size & 127 | buf[pos + 2] << 7) >> 1
            pos += 3
        else:
            size, pos = read_length(buf, pos + 1)
        end = pos + size
        data: bytes | None = buf[pos:end]
        pos = end
    elif branch == 2:
        data = None
        pos += 1
    else:
        raise ValueError(f"data union index {branch >> 1} out of range")
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} bytes after the record")
    return attrs, data, suspect


_NAMES: dict[bytes, str] = {}  # an extension name's Avro string -> the name, once checked


def _read_extensions(buf: bytes, pos: int, attrs: dict[str, Any]) -> tuple[int, bool]:
    """Read the attributes map into `attrs`: (the position after it, whether one needs validation)."""
    odd = False
    count = buf[pos]
    if count < 128 and not count & 1:  # under 64 entries: one byte
        count >>= 1
        pos += 1
    else:
        count, pos = read_long(buf, pos)
    while count:
        if count < 0:  # a block with its byte size: skip the size
            count = -count
            _, pos = read_long(buf, pos)
        for _ in range(count):
            size = buf[pos]
            name = _NAMES.get(buf[pos : pos + 1 + (size >> 1)]) if size < 128 else None
            if name is None:
                start = pos
                name, pos = read_text(buf, pos)
                if name in _STANDARD:
                    raise ValueError(f"standard attribute {name!r} in the extensions map")
                if is_extension_name(name):
                    remember(_NAMES, buf[start:pos], name)
                else:
                    odd = True
            else:
                pos += 1 + (size >> 1)
            branch = buf[pos]
            pos += 1
            if branch == 8:
                size = buf[pos]
                if size < 128 and not size & 1:
                    end = pos + 1 + (size >> 1)
                    attrs[name] = buf[pos + 1 : end].decode()
                    pos = end
                else:
                    attrs[name], pos = read_text(buf, pos)
            elif branch == 2:
                attrs[name] = buf[pos] == 1
                pos += 1
            elif branch == 4:
                attrs[name], pos = read_long(buf, pos)
                odd = odd or not INT32[0] <= attrs[name] <= INT32[1]
            elif branch == 6:
                attrs[name], pos = read_time(buf, pos)
            elif branch == 10:
                size, pos = read_length(buf, pos)
                attrs[name] = buf[pos : pos + size]
                pos += size
            elif branch == 0:
                pass  # a null extension is an absent one
            else:
                raise ValueError(f"attribute union index {branch >> 1} out of range")
        if buf[pos] == 0:  # the end of the map
            return pos + 1, odd
        count, pos = read_long(buf, pos)
    return pos, odd


def event_data(content_type: str | None, data: bytes | None) -> Any:
    """Data read from the wire as the event holds it: JSON parsed, text decoded, else bytes."""
    if data is None:
        return None
    if is_json_content_type(content_type):
        with contextlib.suppress(ValueError):  # binary data labelled JSON: hand over the bytes
            return loads_json(data)
    elif content_type is not None and content_type.startswith("text/"):
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode()
    return data


def read_compact_any(payload: bytes) -> tuple[dict[str, Any], bytes | None, bool]:
    """`read_compact_checked`, with anything that is not the format reported as EventValidationError."""
    try:
        return read_compact_checked(payload)
    except (ValueError, IndexError, OverflowError) as exc:
        raise EventValidationError(
            "invalid CloudEvent Avro Compact",
            [Problem("body", f"{len(payload)} bytes", f"not the Avro Compact format: {exc}")],
        ) from exc


def from_avro_compact(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro Compact format; EventValidationError for anything else."""
    attrs, raw, suspect = read_compact_any(payload)
    data = event_data(attrs.get("datacontenttype"), raw)
    if suspect:
        validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)
