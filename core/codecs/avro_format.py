"""The CloudEvents Avro event format (cloudevents/spec formats/avro-format.md, cloudevents.avsc).

Content type ``application/cloudevents+avro``. Every attribute goes into the
``attribute`` map (time as an RFC 3339 string); ``data`` is the spec's union:
bytes for binary data (including Avro- or Protobuf-encoded data), a string for
text, and for JSON data the spec's JSON-value representation (objects as
maps, nested objects as ``CloudEventData`` records, numbers as doubles).
That representation cannot hold every JSON shape (arrays inside a top-level
object, arrays of scalars, objects nested two deep): such data is written as
its UTF-8 JSON text in the ``bytes`` branch, which the spec allows ("binary"),
and read back by parsing it because the datacontenttype says JSON.
The Avro binary carries no schema: both sides use the spec's.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from core.errors import EventValidationError, Problem
from core.events import build_event, validate_attributes
from core.formats import is_json_content_type

CONTENT_TYPE = "application/cloudevents+avro"
_DATA_RECORD = "io.cloudevents.CloudEventData"

CLOUDEVENT_AVSC: dict[str, Any] = {
    "namespace": "io.cloudevents",
    "type": "record",
    "name": "CloudEvent",
    "version": "1.0",
    "doc": "Avro Event Format for CloudEvents",
    "fields": [
        {
            "name": "attribute",
            "type": {"type": "map", "values": ["null", "boolean", "int", "string", "bytes"]},
        },
        {
            "name": "data",
            "type": [
                "bytes",
                "null",
                "boolean",
                {
                    "type": "map",
                    "values": [
                        "null",
                        "boolean",
                        {
                            "type": "record",
                            "name": "CloudEventData",
                            "doc": "Representation of a JSON Value",
                            "fields": [
                                {
                                    "name": "value",
                                    "type": {
                                        "type": "map",
                                        "values": [
                                            "null",
                                            "boolean",
                                            {"type": "map", "values": "CloudEventData"},
                                            {"type": "array", "items": "CloudEventData"},
                                            "double",
                                            "string",
                                        ],
                                    },
                                }
                            ],
                        },
                        "double",
                        "string",
                    ],
                },
                {"type": "array", "items": "CloudEventData"},
                "double",
                "string",
            ],
        },
    ],
}

_parsed: Any = None
_SCALAR = (type(None), bool, int, float, str)


def _schema() -> Any:
    global _parsed
    if _parsed is None:
        import fastavro

        _parsed = fastavro.parse_schema(CLOUDEVENT_AVSC)
    return _parsed


class _NotRepresentable(Exception):
    pass


def _number(value: Any) -> Any:
    return float(value) if type(value) is int else value


def _record(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object as CloudEventData: its values scalars, arrays of objects or objects of objects."""
    value: dict[str, Any] = {}
    for key, item in obj.items():
        if type(item) in _SCALAR:
            value[key] = _number(item)
        elif type(item) is list and all(type(x) is dict for x in item):
            value[key] = [_record(x) for x in item]
        elif type(item) is dict and all(type(x) is dict for x in item.values()):
            value[key] = {k: _record(x) for k, x in item.items()}
        else:
            raise _NotRepresentable
    return {"value": value}


def _json_data(data: Any) -> Any:
    kind = type(data)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in data.items():
            if type(item) in _SCALAR:
                out[key] = _number(item)
            elif type(item) is dict:
                out[key] = (_DATA_RECORD, _record(item))  # a record inside a union: name the branch
            else:
                raise _NotRepresentable
        return out
    if kind is list:
        if all(type(x) is dict for x in data):
            return [_record(x) for x in data]
        raise _NotRepresentable
    if kind in _SCALAR:
        return _number(data)
    raise _NotRepresentable


def _unrecord(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in record["value"].items():
        kind = type(item)
        if kind is list:
            out[key] = [_unrecord(x) for x in item]
        elif kind is dict:
            out[key] = {k: _unrecord(x) for k, x in item.items()}
        else:
            out[key] = item
    return out


def _plain(data: Any) -> Any:
    """Undo the JSON-value representation (records in unions arrive as (name, fields) tuples)."""
    if type(data) is list:
        return [_unrecord(x) for x in data]
    return {k: _unrecord(v[1]) if type(v) is tuple else v for k, v in data.items()}


def _attribute_map(event: CloudEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        if type(value) is datetime:
            text = value.isoformat()
            out[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
        else:
            out[name] = value
    return out


def to_avro_record(event: CloudEvent) -> dict[str, Any]:
    """The event as a record of the spec's schema (for writers that batch or frame records)."""
    data = event.get_data()
    if data is None or type(data) is bytes:
        payload: Any = data
    elif isinstance(data, bytes | bytearray):
        payload = bytes(data)
    elif is_json_content_type(event.get_datacontenttype()):
        try:
            payload = _json_data(data)
        except _NotRepresentable:
            payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    else:
        payload = data if isinstance(data, str) else str(data)
    return {"attribute": _attribute_map(event), "data": payload}


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_LONGS = [_zigzag(n) for n in range(2048)]  # lengths and counts: the common case is a table lookup
_ATTR_BRANCH = {
    str: b"\x06",
    bool: b"\x02",
    int: b"\x04",
    bytes: b"\x08",
}  # union indexes 3, 1, 2, 4


def _long(n: int) -> bytes:
    return _LONGS[n] if 0 <= n < 2048 else _zigzag(n)


def _fast_write(attrs: dict[str, Any], data: Any) -> bytes:
    """The Avro binary of the record, written directly: attribute map then the data union.

    Only for data that is bytes, text or absent; JSON values go through fastavro.
    """
    out = bytearray(_long(len(attrs)))
    for name, value in attrs.items():
        key = name.encode()
        out += _LONGS[len(key)] if len(key) < 2048 else _zigzag(len(key))
        out += key
        kind = type(value)
        out += _ATTR_BRANCH[kind]
        if kind is str:
            raw = value.encode()
            out += _long(len(raw))
            out += raw
        elif kind is bool:
            out.append(1 if value else 0)
        elif kind is int:
            out += _zigzag(value)
        else:
            out += _long(len(value))
            out += value
    out.append(0)  # end of map
    if data is None:
        out.append(2)  # branch 1: null
    elif type(data) is bytes:
        out.append(0)  # branch 0: bytes
        out += _long(len(data))
        out += data
    else:
        raw = data.encode()
        out.append(12)  # branch 6: string
        out += _long(len(raw))
        out += raw
    return bytes(out)


def to_avro(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Avro format (schemaless Avro binary of cloudevents.avsc)."""
    record = to_avro_record(event)
    data = record["data"]
    if data is None or type(data) in (bytes, str):
        return _fast_write(record["attribute"], data)
    from fastavro import schemaless_writer

    out = io.BytesIO()
    schemaless_writer(out, _schema(), record)
    return out.getvalue()


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _fast_read(buf: bytes) -> dict[str, Any] | None:
    """The record read directly, or None when the data is a JSON value (then fastavro reads it)."""
    attrs: dict[str, Any] = {}
    read = _read_long
    count, pos = read(buf, 0)
    while count:
        if count < 0:  # a block with its byte size: skip the size
            count = -count
            _, pos = read(buf, pos)
        for _ in range(count):
            size, pos = read(buf, pos)
            name = buf[pos : pos + size].decode()
            pos += size
            branch = buf[pos]
            pos += 1
            if branch == 6 or branch == 8:
                size, pos = read(buf, pos)
                raw = buf[pos : pos + size]
                pos += size
                attrs[name] = raw.decode() if branch == 6 else raw
            elif branch == 2:
                attrs[name] = buf[pos] == 1
                pos += 1
            elif branch == 4:
                attrs[name], pos = read(buf, pos)
            else:
                attrs[name] = None
        count, pos = read(buf, pos)
    branch = buf[pos]
    pos += 1
    if branch == 2:
        data: Any = None
    elif branch == 0 or branch == 12:
        size, pos = read(buf, pos)
        data = buf[pos : pos + size]
        pos += size
        if branch == 12:
            data = data.decode()
    else:
        return None
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} bytes after the record")
    return {"attribute": attrs, "data": data}


def from_avro_record(record: dict[str, Any]) -> CloudEvent:
    """A validated CloudEvent from a decoded record (read with return_record_name=True)."""
    attrs = dict(record["attribute"])
    data = record["data"]
    time = attrs.get("time")
    if type(time) is str:
        try:
            attrs["time"] = datetime.fromisoformat(time)
        except ValueError as exc:
            raise EventValidationError(
                "invalid CloudEvent", [Problem("time", time, "must be an RFC 3339 timestamp")]
            ) from exc
    if type(data) is bytes:
        if is_json_content_type(attrs.get("datacontenttype")) and "datacontenttype" in attrs:
            with contextlib.suppress(ValueError):  # binary data labelled JSON: hand over the bytes
                data = json.loads(data)
    elif type(data) in (dict, list):
        data = _plain(data)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def from_avro(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro format; EventValidationError for anything else."""
    from fastavro import schemaless_reader

    try:
        record: Any = _fast_read(payload)
        if record is None:
            record = schemaless_reader(
                io.BytesIO(payload), _schema(), None, return_record_name=True
            )
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError... on junk
        raise EventValidationError(
            "invalid CloudEvent Avro",
            [Problem("body", f"{len(payload)} bytes", f"not the CloudEvents Avro format: {exc}")],
        ) from exc
    return from_avro_record(record)
