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
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from core.codecs.avro_wire import HALF, ZZ, long_bytes, read_long, zigzag
from core.errors import EventValidationError, Problem
from core.events import build_event, validate_attributes
from core.formats import dumps_json, is_json_content_type, loads_json

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
_FIELDS = ("id", "source", "type", "datacontenttype", "dataschema", "subject")
_OPTIONAL = frozenset(("datacontenttype", "dataschema", "subject"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NULL, _ONE = b"\x00", b"\x02"  # union branch 0 (null) and 1 (the value) of ["null", X]
# attributes map value branches: null, boolean, int, timestamp-micros, string, bytes
_EXT_BOOL, _EXT_INT, _EXT_TIME, _EXT_STRING, _EXT_BYTES = (
    b"\x02",
    b"\x04",
    b"\x06",
    b"\x08",
    b"\x0a",
)


def _string(value: str) -> bytes:
    raw = value.encode()
    size = len(raw)
    return (ZZ[size + HALF] if size < HALF else zigzag(size)) + raw


def _extensions(attrs: Mapping[str, Any], names: set[str]) -> bytes:
    parts = [long_bytes(len(names))]
    add = parts.append
    for name in names:
        value = attrs[name]
        kind = type(value)
        add(_string(name))
        if kind is str:
            add(_EXT_STRING)
            add(_string(value))
        elif kind is bool:
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
            add(_timestamp(value))
        elif value is None:
            add(_NULL)
        else:
            add(_EXT_STRING)
            add(_string(str(value)))
    add(_NULL)
    return b"".join(parts)


def write_compact(attrs: Mapping[str, Any], data: bytes | None) -> bytes:
    """The Avro binary of the compact record for these attributes and data bytes (or None)."""
    get = attrs.get
    if get("specversion", SPECVERSION) != SPECVERSION:
        raise EventValidationError(
            "not representable in the Avro Compact format",
            [Problem("specversion", get("specversion"), "must be '1.0'")],
        )
    zz = ZZ
    try:  # lengths from the table; a string of 1 KiB or more takes the general path below
        raw = attrs["id"].encode()
        parts = [zz[len(raw) + HALF], raw]
        add = parts.append
        raw = attrs["source"].encode()
        add(zz[len(raw) + HALF])
        add(raw)
        raw = attrs["type"].encode()
        add(zz[len(raw) + HALF])
        add(raw)
        for name in ("datacontenttype", "dataschema", "subject"):
            value = get(name)
            if value is None:
                add(_NULL)
            else:
                raw = value.encode()
                add(_ONE)
                add(zz[len(raw) + HALF])
                add(raw)
        if data is not None:
            tail = zz[len(data) + HALF]
    except IndexError:
        return _write_general(attrs, data)
    time = get("time")
    add(_NULL if time is None else _ONE + _timestamp(time))
    names = attrs.keys() - _STANDARD
    add(_extensions(attrs, names) if names else _NULL)
    if data is None:
        add(b"\x02")  # data branch 1: null
    else:
        add(b"\x00")  # data branch 0: bytes
        add(tail)
        add(data)
    return b"".join(parts)


def _write_general(attrs: Mapping[str, Any], data: bytes | None) -> bytes:
    get = attrs.get
    out = _string(attrs["id"]) + _string(attrs["source"]) + _string(attrs["type"])
    for name in ("datacontenttype", "dataschema", "subject"):
        value = get(name)
        out += _NULL if value is None else _ONE + _string(value)
    time = get("time")
    out += _NULL if time is None else _ONE + _timestamp(time)
    names = attrs.keys() - _STANDARD
    out += _extensions(attrs, names) if names else _NULL
    if data is None:
        return out + b"\x02"
    return out + b"\x00" + long_bytes(len(data)) + data


def _timestamp(value: datetime) -> bytes:
    """timestamp-micros as an Avro long; today's instants take 8 bytes, written in one step."""
    n = (value - _EPOCH) // _MICRO
    n = (n << 1) ^ (n >> 63)
    if 1 << 49 <= n < 1 << 56:
        return bytes(
            (
                (n & 127) | 128,
                (n >> 7 & 127) | 128,
                (n >> 14 & 127) | 128,
                (n >> 21 & 127) | 128,
                (n >> 28 & 127) | 128,
                (n >> 35 & 127) | 128,
                (n >> 42 & 127) | 128,
                n >> 49,
            )
        )
    return zigzag((n >> 1) ^ -(n & 1))


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


def _text(buf: bytes, pos: int) -> tuple[str, int]:
    size = buf[pos]
    if size < 128:
        pos += 1
        size >>= 1
    else:
        size, pos = read_long(buf, pos)
        if size < 0:
            raise ValueError("negative length")
    end = pos + size
    if end > len(buf):
        raise ValueError("string runs past the end")
    return buf[pos:end].decode(), end


def read_compact(buf: bytes) -> tuple[dict[str, Any], bytes | None]:
    """(attributes with specversion and time as a datetime, data bytes or None)."""
    attrs: dict[str, Any] = {"specversion": SPECVERSION}
    pos = 0
    for name in _FIELDS:
        if name in _OPTIONAL:
            branch = buf[pos]
            pos += 1
            if branch == 0:
                continue
            if branch != 2:
                raise ValueError(f"{name} union index {branch >> 1} out of range")
        size = buf[pos]
        if size < 128:  # a length under 64: one byte
            pos += 1
            size >>= 1
        else:
            size, pos = read_long(buf, pos)
            if size < 0:
                raise ValueError("negative length")
        end = pos + size
        if end > len(buf):
            raise ValueError("string runs past the end")
        attrs[name] = buf[pos:end].decode()
        pos = end
    branch = buf[pos]
    if branch == 2:
        micros, pos = _read_timestamp(buf, pos + 1)
        attrs["time"] = _EPOCH + timedelta(microseconds=micros)
    elif branch:
        raise ValueError(f"time union index {branch >> 1} out of range")
    else:
        pos += 1
    if buf[pos]:
        pos = _read_extensions(buf, pos, attrs)
    else:
        pos += 1
    branch = buf[pos]
    if branch == 0:
        size, pos = read_long(buf, pos + 1)
        if size < 0:
            raise ValueError("negative length")
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
    return attrs, data


def _read_timestamp(buf: bytes, pos: int) -> tuple[int, int]:
    """An Avro long; today's timestamp-micros (8 bytes) in one step."""
    raw = int.from_bytes(buf[pos : pos + 8], "little")
    if raw & 0x8080808080808080 != 0x0080808080808080:
        return read_long(buf, pos)
    n = (
        (raw & 127)
        | (raw >> 1 & 0x3F80)
        | (raw >> 2 & 0x1FC000)
        | (raw >> 3 & 0xFE00000)
        | (raw >> 4 & 0x7F0000000)
        | (raw >> 5 & 0x3F800000000)
        | (raw >> 6 & 0x1FC0000000000)
        | (raw >> 7 & 0xFE000000000000)
    )
    return (n >> 1) ^ -(n & 1), pos + 8


def _read_extensions(buf: bytes, pos: int, attrs: dict[str, Any]) -> int:
    count, pos = read_long(buf, pos)
    while count:
        if count < 0:  # a block with its byte size: skip the size
            count = -count
            _, pos = read_long(buf, pos)
        for _ in range(count):
            name, pos = _text(buf, pos)
            if name in _STANDARD:
                raise ValueError(f"standard attribute {name!r} in the extensions map")
            branch = buf[pos]
            pos += 1
            if branch == 8:
                attrs[name], pos = _text(buf, pos)
            elif branch == 2:
                attrs[name] = buf[pos] == 1
                pos += 1
            elif branch == 4:
                attrs[name], pos = read_long(buf, pos)
            elif branch == 6:
                micros, pos = _read_timestamp(buf, pos)
                attrs[name] = _EPOCH + timedelta(microseconds=micros)
            elif branch == 10:
                size, pos = read_long(buf, pos)
                if size < 0:
                    raise ValueError("negative length")
                attrs[name] = buf[pos : pos + size]
                pos += size
            elif branch == 0:
                pass  # a null extension is an absent one
            else:
                raise ValueError(f"attribute union index {branch >> 1} out of range")
        count, pos = read_long(buf, pos)
    return pos


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


def read_compact_any(payload: bytes) -> tuple[dict[str, Any], bytes | None]:
    """`read_compact`, with anything that is not the format reported as EventValidationError."""
    try:
        return read_compact(payload)
    except (ValueError, IndexError, OverflowError) as exc:
        raise EventValidationError(
            "invalid CloudEvent Avro Compact",
            [Problem("body", f"{len(payload)} bytes", f"not the Avro Compact format: {exc}")],
        ) from exc


def from_avro_compact(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro Compact format; EventValidationError for anything else."""
    attrs, raw = read_compact_any(payload)
    data = event_data(attrs.get("datacontenttype"), raw)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)
