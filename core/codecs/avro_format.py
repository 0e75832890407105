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
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from core.codecs.avro_wire import HALF, ZZ, long_bytes, read_long, zigzag
from core.errors import EventValidationError, Problem
from core.events import build_event, validate_attributes
from core.formats import dumps_json, is_json_content_type, parse_time

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


_STRING, _BOOLEAN, _INT, _BYTES = b"\x06", b"\x02", b"\x04", b"\x08"  # attribute union indexes
_KEYS: dict[
    str, bytes
] = {}  # attribute name -> its Avro string (length + UTF-8), built once per name
_TEXT_KEYS: dict[str, bytes] = {}  # the same followed by the string branch index


def _key(name: str) -> bytes:
    raw = name.encode()
    found = _KEYS[name] = long_bytes(len(raw)) + raw
    _TEXT_KEYS[name] = found + _STRING
    return found


def _text_key(name: str) -> bytes:
    _key(name)
    return _TEXT_KEYS[name]


def write_avro(attrs: Mapping[str, Any], data: Any) -> bytes:
    """The Avro binary of the record: the attribute map, then the data union (bytes, text or none).

    Written directly against the spec's fixed schema: no generic schema interpretation.
    """
    present = (
        len(attrs) if None not in attrs.values() else sum(v is not None for v in attrs.values())
    )
    parts = [ZZ[present + HALF] if present < HALF else zigzag(present)]
    add = parts.append
    text_keys = _TEXT_KEYS
    for name, value in attrs.items():
        kind = type(value)
        if kind is str:
            raw = value.encode()
        elif kind is datetime:
            text = value.isoformat()
            raw = (text[:-6] + "Z" if text.endswith("+00:00") else text).encode()
        elif value is None:
            continue
        else:
            add(_KEYS.get(name) or _key(name))
            if kind is bool:
                add(b"\x02\x01" if value else b"\x02\x00")
                continue
            if kind is int:
                add(_INT)
                add(long_bytes(value))
                continue
            if kind is bytes:
                add(_BYTES)
                add(long_bytes(len(value)))
                add(value)
                continue
            raw = str(value).encode()
            add(_STRING)
            add(long_bytes(len(raw)))
            add(raw)
            continue
        add(text_keys.get(name) or _text_key(name))
        size = len(raw)
        add(ZZ[size + HALF] if size < HALF else zigzag(size))
        add(raw)
    if data is None:
        add(b"\x00\x02")  # end of map, data branch 1: null
        return b"".join(parts)
    if type(data) is bytes:
        add(b"\x00\x00")  # end of map, data branch 0: bytes
        raw = data
    else:
        raw = data.encode()
        add(b"\x00\x0c")  # end of map, data branch 6: string
    size = len(raw)
    add(ZZ[size + HALF] if size < HALF else zigzag(size))
    add(raw)
    return b"".join(parts)


def _payload(event: CloudEvent) -> Any:
    """The event's data as the spec's data union value (bytes, str, None or a JSON value)."""
    data = event.get_data()
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if is_json_content_type(event.get_datacontenttype()):
        try:
            return _json_data(data)
        except _NotRepresentable:
            return dumps_json(data).encode("utf-8")
    return data if isinstance(data, str) else str(data)


def to_avro(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Avro format (schemaless Avro binary of cloudevents.avsc)."""
    data = _payload(event)
    if data is None or type(data) is bytes or type(data) is str:
        return write_avro(event.get_attributes(), data)
    from fastavro import schemaless_writer

    out = io.BytesIO()
    schemaless_writer(out, _schema(), {"attribute": _attribute_map(event), "data": data})
    return out.getvalue()


def read_avro(buf: bytes) -> tuple[dict[str, Any], Any] | None:
    """(attributes, data) read directly, or None when the data is a JSON value (fastavro reads it).

    Attributes come back as written: time still an RFC 3339 string.
    """
    attrs: dict[str, Any] = {}
    count, pos = read_long(buf, 0)
    while count:
        if count < 0:  # a block with its byte size: skip the size
            count = -count
            _, pos = read_long(buf, pos)
        for _ in range(count):
            size = buf[pos]
            if size < 128:
                pos += 1
                size >>= 1
            else:
                size, pos = read_long(buf, pos)
            end = pos + size
            name = buf[pos:end].decode()
            branch = buf[end]
            pos = end + 1
            if branch == 6 or branch == 8:
                size = buf[pos]
                if size < 128:
                    pos += 1
                    size >>= 1
                else:
                    size, pos = read_long(buf, pos)
                end = pos + size
                attrs[name] = buf[pos:end].decode() if branch == 6 else buf[pos:end]
                pos = end
            elif branch == 2:
                attrs[name] = buf[pos] == 1
                pos += 1
            elif branch == 4:
                attrs[name], pos = read_long(buf, pos)
            elif branch == 0:
                attrs[name] = None
            else:
                raise ValueError(f"attribute union index {branch >> 1} out of range")
        count, pos = read_long(buf, pos)
    branch = buf[pos]
    pos += 1
    if branch == 2:
        data: Any = None
    elif branch == 0 or branch == 12:
        size, pos = read_long(buf, pos)
        if size < 0:
            raise ValueError("negative length")
        end = pos + size
        data = buf[pos:end]
        if branch == 12:
            data = data.decode()
        pos = end
    else:
        return None
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} bytes after the record")
    return attrs, data


def to_avro_record(event: CloudEvent) -> dict[str, Any]:
    """The event as a record of the spec's schema (for writers that batch or frame records)."""
    return {"attribute": _attribute_map(event), "data": _payload(event)}


def avro_event(attrs: dict[str, Any], data: Any) -> CloudEvent:
    """A validated CloudEvent from read attributes (time as text) and data; takes over `attrs`."""
    parse_time(attrs)
    if type(data) is bytes:
        if "datacontenttype" in attrs and is_json_content_type(attrs["datacontenttype"]):
            with contextlib.suppress(ValueError):  # binary data labelled JSON: hand over the bytes
                data = json.loads(data)
    elif type(data) is dict or type(data) is list:
        data = _plain(data)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def from_avro_record(record: dict[str, Any]) -> CloudEvent:
    """A validated CloudEvent from a decoded record (read with return_record_name=True)."""
    return avro_event(dict(record["attribute"]), record["data"])


def read_avro_any(payload: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) of any CloudEvents Avro body; EventValidationError for anything else."""
    try:
        found = read_avro(payload)
        if found is None:
            from fastavro import schemaless_reader

            stream = io.BytesIO(payload)
            record: Any = schemaless_reader(stream, _schema(), None, return_record_name=True)
            if stream.tell() != len(payload):
                raise ValueError(f"{len(payload) - stream.tell()} bytes after the record")
            found = record["attribute"], record["data"]
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError... on junk
        raise EventValidationError(
            "invalid CloudEvent Avro",
            [Problem("body", f"{len(payload)} bytes", f"not the CloudEvents Avro format: {exc}")],
        ) from exc
    return found


def from_avro(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro format; EventValidationError for anything else."""
    attrs, data = read_avro_any(payload)
    return avro_event(attrs, data)
