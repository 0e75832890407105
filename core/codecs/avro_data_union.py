"""The data union of the CloudEvents Avro format, and the Avro strings and blocks it shares.

JSON data travels in the spec's JSON-value representation: an object as a map
of [null, boolean, CloudEventData, double, string], nested objects as
``CloudEventData`` records (a ``value`` map of [null, boolean, map, array,
double, string]), an array as an array of records, numbers as doubles. Shapes
it cannot hold (arrays of scalars, arrays inside a top-level object, objects
nested two deep without a record) raise `NotRepresentable`; the format then
writes the JSON text as bytes.

`json_value_bytes` writes, and `read_json_value` reads, that representation
directly, byte for byte what fastavro writes for `to_record_value(data)` and
reading everything fastavro writes; `to_record_value` / `from_record_value`
convert for callers that hand records to fastavro.
"""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

from polybus.core.codecs.avro_wire import (
    HALF,
    UNPACK_D,
    ZZ,
    avro_string,
    long_bytes,
    read_count,
    read_length,
    read_text,
    zigzag,
)
from polybus.core.codecs.wire import remember
from polybus.core.formats import dumps_json, is_json_content_type, loads_json

DATA_RECORD = "io.cloudevents.CloudEventData"
_SCALAR = (type(None), bool, int, float, str)


class NotRepresentable(Exception):
    """The JSON value has a shape the spec's representation cannot hold."""


# --- the data union as a whole -----------------------------------------------------------


def data_parts(data: bytes | str | None) -> tuple[bytes, bytes]:
    """(the map's end, the data branch and length; the data bytes) for bytes, text or None."""
    if data is None:
        return b"\x00\x02", b""  # end of map, data branch 1: null
    if isinstance(data, bytes):
        tag = b"\x00\x00"  # end of map, data branch 0: bytes
        raw = data
    else:
        raw = data.encode()
        tag = b"\x00\x0c"  # end of map, data branch 6: string
    size = len(raw)
    return tag + (ZZ[size + HALF] if size < HALF else zigzag(size)), raw


# The last top-level key that held an array (which the representation cannot hold): an object
# with an array there again goes straight to JSON text.
_array_key: Any = None


def event_data_parts(data: Any, content_type: str | None) -> tuple[bytes, bytes]:
    """`data_parts` for an event's data: JSON data in the JSON-value branch, or as JSON text when
    it does not fit; text; bytes; None."""
    global _array_key
    if data is None or type(data) is bytes or type(data) is str:
        return data_parts(data)
    if isinstance(data, bytes | bytearray):
        return data_parts(bytes(data))
    if not is_json_content_type(content_type):
        return data_parts(data if isinstance(data, str) else str(data))
    if type(data) is not dict:
        try:
            return b"\x00", json_value_bytes(data)  # the map's end, then the JSON-value union
        except NotRepresentable:
            return data_parts(dumps_json(data).encode())
    if type(data.get(_array_key)) is not list:
        try:
            return b"\x00", _data_map(data)
        except (NotRepresentable, struct.error):  # struct.error: an int beyond a double
            _array_key = next((k for k, v in data.items() if type(v) is list), _array_key)
    return data_parts(dumps_json(data).encode())


def read_data(buf: bytes, pos: int) -> tuple[Any, int]:
    """The data union at `pos`: bytes, None, text or a JSON value (as plain JSON)."""
    branch = buf[pos]
    if branch == 6:
        return _read_data_map(buf, pos + 1)
    if branch == 0:
        size = buf[pos + 1]
        if size < 128 and not size & 1:  # under 64 bytes
            pos += 2
            size >>= 1
        elif size & 129 == 128 and buf[pos + 2] < 128:  # two bytes: under 8 KiB
            size = (size & 127 | buf[pos + 2] << 7) >> 1
            pos += 3
        else:
            size, pos = read_length(buf, pos + 1)
        end = pos + size
        if end > len(buf):
            raise ValueError("data runs past the end")
        return buf[pos:end], end
    if branch == 2:
        return None, pos + 1
    if branch == 12:
        return read_text(buf, pos + 1)
    return read_json_value(buf, pos)


def parse_json_bytes(data: bytes) -> Any:
    """JSON data from its bytes; the bytes themselves when they are not JSON."""
    try:
        return loads_json(data)
    except ValueError:
        with contextlib.suppress(ValueError):  # json.loads also takes UTF-16/32 and a BOM
            return json.loads(data)
    return data


# --- as fastavro records -------------------------------------------------------------------


def record_data(data: Any, content_type: str | None) -> Any:
    """The event's data as fastavro's value of the data union (bytes, str, None or a JSON value)."""
    if data is None or type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if is_json_content_type(content_type):
        try:
            return to_record_value(data)
        except NotRepresentable:
            return dumps_json(data).encode("utf-8")
    return data if isinstance(data, str) else str(data)


def _number(value: Any) -> Any:
    if type(value) is not int:
        return value
    try:
        return float(value)
    except OverflowError as exc:  # beyond a double: the JSON text holds it exactly
        raise NotRepresentable from exc


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
            raise NotRepresentable
    return {"value": value}


def to_record_value(data: Any) -> Any:
    """JSON data as the value of the data field for fastavro (NotRepresentable if it does not fit)."""
    kind = type(data)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in data.items():
            if type(item) in _SCALAR:
                out[key] = _number(item)
            elif type(item) is dict:
                out[key] = (DATA_RECORD, _record(item))  # a record inside a union: name the branch
            else:
                raise NotRepresentable
        return out
    if kind is list:
        if all(type(x) is dict for x in data):
            return [_record(x) for x in data]
        raise NotRepresentable
    if kind in _SCALAR:
        return _number(data)
    raise NotRepresentable


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


def from_record_value(data: Any) -> Any:
    """Undo the JSON-value representation (records in unions arrive as (name, fields) tuples)."""
    if type(data) is list:
        return [_unrecord(x) for x in data]
    return {k: _unrecord(v[1]) if type(v) is tuple else v for k, v in data.items()}


# --- written and read directly ---------------------------------------------------------------

_DATA_KEYS: dict[str, bytes] = {}  # JSON object key -> its Avro string
_TAGGED_DOUBLE = struct.Struct("<Bd").pack  # a union branch index, then a double (int or float)
_STRING_TAGS = [b"\x08" + zigzag(n) for n in range(64)]  # top-level map string branch, length


def _data_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise NotRepresentable
    return remember(_DATA_KEYS, key, avro_string(key))


def json_value_bytes(data: Any) -> bytes:
    """The data union for JSON data: branch index, then the JSON-value representation."""
    try:
        return _json_value(data)
    except struct.error as exc:  # an int beyond a double: the JSON text holds it exactly
        raise NotRepresentable from exc


def _json_value(data: Any) -> bytes:
    kind = type(data)
    if kind is dict:
        return _data_map(data)
    if kind is list:
        return b"\x08" + _records(data)
    if kind is str:
        return b"\x0c" + avro_string(data)
    if kind is float or kind is int:
        return _TAGGED_DOUBLE(10, data)
    if kind is bool:
        return b"\x04\x01" if data else b"\x04\x00"
    if data is None:
        return b"\x02"
    raise NotRepresentable


def _data_map(obj: dict[str, Any]) -> bytes:
    """Branch 3: a map whose values are [null, boolean, CloudEventData, double, string]."""
    if not obj:
        return b"\x06\x00"
    parts = [b"\x06", long_bytes(len(obj))]
    add = parts.append
    keys = _DATA_KEYS
    for key, item in obj.items():
        add(keys.get(key) or _data_key(key))
        kind = type(item)
        if kind is float or kind is int:
            add(_TAGGED_DOUBLE(6, item))
        elif kind is str:
            raw = item.encode()
            size = len(raw)
            add(_STRING_TAGS[size] if size < 64 else b"\x08" + zigzag(size))
            add(raw)
        elif kind is bool:
            add(b"\x02\x01" if item else b"\x02\x00")
        elif item is None:
            add(b"\x00")
        elif kind is dict:
            add(b"\x04")
            add(_record_bytes(item))
        else:
            raise NotRepresentable
    add(b"\x00")
    return b"".join(parts)


def _record_bytes(obj: dict[str, Any]) -> bytes:
    """A CloudEventData record: its value map of [null, boolean, map, array, double, string]."""
    if not obj:
        return b"\x00"
    parts = [long_bytes(len(obj))]
    add = parts.append
    keys = _DATA_KEYS
    for key, item in obj.items():
        add(keys.get(key) or _data_key(key))
        kind = type(item)
        if kind is float or kind is int:
            add(_TAGGED_DOUBLE(8, item))
        elif kind is str:
            add(b"\x0a")
            add(avro_string(item))
        elif kind is bool:
            add(b"\x02\x01" if item else b"\x02\x00")
        elif item is None:
            add(b"\x00")
        elif kind is list:
            add(b"\x06")
            add(_records(item))
        elif kind is dict:
            add(b"\x04")
            add(_record_map(item))
        else:
            raise NotRepresentable
    add(b"\x00")
    return b"".join(parts)


def _records(items: list[Any]) -> bytes:
    """An array of CloudEventData records (every item an object)."""
    if not items:
        return b"\x00"
    parts = [long_bytes(len(items))]
    for item in items:
        if type(item) is not dict:
            raise NotRepresentable
        parts.append(_record_bytes(item))
    parts.append(b"\x00")
    return b"".join(parts)


def _record_map(obj: dict[str, Any]) -> bytes:
    """A map of CloudEventData records (every value an object)."""
    if not obj:
        return b"\x00"
    parts = [long_bytes(len(obj))]
    for key, item in obj.items():
        if type(item) is not dict:
            raise NotRepresentable
        parts.append(_DATA_KEYS.get(key) or _data_key(key))
        parts.append(_record_bytes(item))
    parts.append(b"\x00")
    return b"".join(parts)


def read_json_value(buf: bytes, pos: int) -> tuple[Any, int]:
    """The JSON value whose data union branch index is at `pos` (map, array, double or boolean)."""
    branch = buf[pos]
    if branch == 6:
        return _read_data_map(buf, pos + 1)
    if branch == 8:
        return _read_records(buf, pos + 1)
    if branch == 10:
        return UNPACK_D(buf, pos + 1)[0], pos + 9
    if branch == 4:
        return buf[pos + 1] != 0, pos + 2  # as fastavro: any byte but 0 is true
    raise ValueError(f"data union index {branch >> 1} out of range")


def _read_data_map(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """A map of [null, boolean, CloudEventData, double, string] as a JSON object."""
    out: dict[str, Any] = {}
    count = buf[pos]
    if count < 128 and not count & 1:  # under 64 entries
        count >>= 1
        pos += 1
    else:
        count, pos = read_count(buf, pos)
    while count:
        for _ in range(count):
            size = buf[pos]
            if size < 128 and not size & 1:  # a key under 64 bytes, inline
                end = pos + 1 + (size >> 1)
                key = buf[pos + 1 : end].decode()
            else:
                key, end = read_text(buf, pos)
            branch = buf[end]
            pos = end + 1
            if branch == 6:
                out[key] = UNPACK_D(buf, pos)[0]
                pos += 8
            elif branch == 8:
                size = buf[pos]
                if size < 128 and not size & 1:
                    end = pos + 1 + (size >> 1)
                    out[key] = buf[pos + 1 : end].decode()
                    pos = end
                else:
                    out[key], pos = read_text(buf, pos)
            elif branch == 0:
                out[key] = None
            elif branch == 2:
                out[key] = buf[pos] != 0
                pos += 1
            elif branch == 4:
                out[key], pos = _read_record(buf, pos)
            else:
                raise ValueError(f"data map union index {branch >> 1} out of range")
        if buf[pos] == 0:  # the end of the map
            return out, pos + 1
        count, pos = read_count(buf, pos)
    return out, pos


def _read_record(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """A CloudEventData record (its value map of [null, boolean, map, array, double, string])."""
    out: dict[str, Any] = {}
    count, pos = read_count(buf, pos)
    while count:
        for _ in range(count):
            size = buf[pos]
            if size < 128 and not size & 1:  # a key under 64 bytes, inline
                end = pos + 1 + (size >> 1)
                key = buf[pos + 1 : end].decode()
            else:
                key, end = read_text(buf, pos)
            branch = buf[end]
            pos = end + 1
            if branch == 8:
                out[key] = UNPACK_D(buf, pos)[0]
                pos += 8
            elif branch == 10:
                out[key], pos = read_text(buf, pos)
            elif branch == 0:
                out[key] = None
            elif branch == 2:
                out[key] = buf[pos] != 0
                pos += 1
            elif branch == 4:
                out[key], pos = _read_record_map(buf, pos)
            elif branch == 6:
                out[key], pos = _read_records(buf, pos)
            else:
                raise ValueError(f"CloudEventData union index {branch >> 1} out of range")
        count, pos = read_count(buf, pos)
    return out, pos


def _read_records(buf: bytes, pos: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    count, pos = read_count(buf, pos)
    while count:
        for _ in range(count):
            item, pos = _read_record(buf, pos)
            out.append(item)
        count, pos = read_count(buf, pos)
    return out, pos


def _read_record_map(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    count, pos = read_count(buf, pos)
    while count:
        for _ in range(count):
            key, pos = read_text(buf, pos)
            out[key], pos = _read_record(buf, pos)
        count, pos = read_count(buf, pos)
    return out, pos
