"""The CloudEvents Protobuf format's wire bytes, written and read directly (cloudevents.proto).

Building a upb message field by field from Python, then turning it back into
a dict, costs more than the whole JSON round trip. The spec's message is
fixed, so this module writes its protobuf encoding with a bytearray and reads
it with one loop over the tags. Unknown fields are skipped, as protobuf
readers must. Tests check both directions against the protobuf runtime.

    CloudEvent: 1 id, 2 source, 3 spec_version, 4 type (strings),
      5 attributes (map<string, CloudEventAttributeValue>),
      oneof data { 6 binary_data, 7 text_data, 8 proto_data (google.protobuf.Any) }
    CloudEventAttributeValue: oneof { 1 ce_boolean, 2 ce_integer, 3 ce_string,
      4 ce_bytes, 5 ce_uri, 6 ce_uri_ref, 7 ce_timestamp (google.protobuf.Timestamp) }
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

_MASK64 = (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUIRED_TAGS = (("id", b"\x0a"), ("source", b"\x12"), ("specversion", b"\x1a"), ("type", b"\x22"))
_REQUIRED = frozenset(name for name, _ in _REQUIRED_TAGS)
_FIELD_NAMES = {0x0A: "id", 0x12: "source", 0x1A: "specversion", 0x22: "type"}
BINARY, TEXT, PROTO = 0x32, 0x3A, 0x42  # tags of the data oneof's members


def varint(n: int) -> bytes:
    """The protobuf base-128 varint of `n` (negative numbers as 64-bit two's complement)."""
    n &= _MASK64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


UV = [varint(n) for n in range(16384)]  # lengths: one list index


def _len(n: int) -> bytes:
    return UV[n] if n < 16384 else varint(n)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(the unsigned varint at `pos`, the position after it)."""
    byte = buf[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise ValueError("varint longer than 10 bytes")
    return n, pos


_KEYS: dict[str, bytes] = {}  # attribute name -> map entry key field (tag, length, UTF-8)


def _key(name: str) -> bytes:
    raw = name.encode()
    found = _KEYS[name] = b"\x0a" + _len(len(raw)) + raw
    return found


def _timestamp(value: datetime) -> bytes:
    delta = value - _EPOCH
    seconds, nanos = delta.days * 86400 + delta.seconds, delta.microseconds * 1000
    body = (b"\x08" + varint(seconds) if seconds else b"") + (
        b"\x10" + varint(nanos) if nanos else b""
    )
    return b"\x3a" + UV[len(body)] + body


def _attribute_value(name: str, value: Any) -> bytes:
    """The CloudEventAttributeValue message of one attribute."""
    kind = type(value)
    if kind is str:
        raw = value.encode()
        return (b"\x2a" if name == "dataschema" else b"\x1a") + _len(len(raw)) + raw
    if kind is datetime:
        return _timestamp(value)
    if kind is bool:
        return b"\x08\x01" if value else b"\x08\x00"
    if kind is int:
        return b"\x10" + varint(value)
    if kind is bytes:
        return b"\x22" + _len(len(value)) + value
    raw = str(value).encode()
    return b"\x1a" + _len(len(raw)) + raw


def write_protobuf(
    attrs: Mapping[str, Any], data_tag: int = 0, data: bytes = b"", type_url: str = ""
) -> bytes:
    """A CloudEvent message: required attributes in fields 1-4, the others in the map, then data.

    `data_tag` is BINARY, TEXT or PROTO (data already bytes: UTF-8 text, or the
    message for PROTO, packed in an Any with `type_url`); 0 for no data.
    """
    out = bytearray()
    get = attrs.get
    for name, tag in _REQUIRED_TAGS:
        value = get(name)
        if value:
            raw = value.encode()
            out += tag
            out += _len(len(raw))
            out += raw
    keys = _KEYS
    for name, value in attrs.items():
        if value is None or name in _REQUIRED:
            continue
        key = keys.get(name) or _key(name)
        inner = _attribute_value(name, value)
        size = len(inner)
        entry_size = len(key) + 1 + len(UV[size] if size < 16384 else varint(size)) + size
        out += b"\x2a"
        out += _len(entry_size)
        out += key
        out += b"\x12"
        out += _len(size)
        out += inner
    if data_tag == PROTO:
        url = type_url.encode()
        any_size = 1 + len(_len(len(url))) + len(url) + 1 + len(_len(len(data))) + len(data)
        out.append(PROTO)
        out += _len(any_size)
        out += b"\x0a"
        out += _len(len(url))
        out += url
        out += b"\x12"
        out += _len(len(data))
        out += data
    elif data_tag:
        out.append(data_tag)
        out += _len(len(data))
        out += data
    return bytes(out)


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return read_varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        size, pos = read_varint(buf, pos)
        return pos + size
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported wire type {wire}")


def _read_value(buf: bytes, pos: int, end: int) -> Any:
    """The value of a CloudEventAttributeValue message in buf[pos:end] (None when empty)."""
    value: Any = None
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag == 0x1A or tag == 0x2A or tag == 0x32:  # ce_string, ce_uri, ce_uri_ref
            size, pos = read_varint(buf, pos)
            value = buf[pos : pos + size].decode()
            pos += size
        elif tag == 0x3A:  # ce_timestamp
            size, pos = read_varint(buf, pos)
            stop, seconds, nanos = pos + size, 0, 0
            while pos < stop:
                field = buf[pos]
                if field == 0x08:
                    seconds, pos = read_varint(buf, pos + 1)
                elif field == 0x10:
                    nanos, pos = read_varint(buf, pos + 1)
                else:
                    pos = _skip(buf, pos + 1, field & 7)
            if seconds >> 63:
                seconds -= 1 << 64
            value = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
        elif tag == 0x08:  # ce_boolean
            raw, pos = read_varint(buf, pos)
            value = raw != 0
        elif tag == 0x10:  # ce_integer (int32, negative ones sign-extended to 64 bits)
            raw, pos = read_varint(buf, pos)
            value = raw - (1 << 64) if raw >> 63 else raw
        elif tag == 0x22:  # ce_bytes
            size, pos = read_varint(buf, pos)
            value = buf[pos : pos + size]
            pos += size
        else:
            pos = _skip(buf, pos, tag & 7) if tag < 128 else _skip_long_tag(buf, pos - 1)
    if pos != end:
        raise ValueError("attribute value overruns its entry")
    return value


def _skip_long_tag(buf: bytes, pos: int) -> int:
    tag, pos = read_varint(buf, pos)
    return _skip(buf, pos, tag & 7)


def read_protobuf(buf: bytes) -> tuple[dict[str, Any], int, bytes, str]:
    """(attributes, data tag, data bytes, Any type URL) of a CloudEvent message.

    Attributes keep protobuf's types (time a UTC datetime); absent required
    fields are left out, since proto3 cannot tell them from empty ones.
    """
    attrs: dict[str, Any] = {}
    data_tag, data, type_url = 0, b"", ""
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag == 0x2A:  # attributes map entry
            size = buf[pos]
            if size < 128:
                pos += 1
            else:
                size, pos = read_varint(buf, pos)
            stop, name, value = pos + size, "", None
            while pos < stop:
                field = buf[pos]
                inner = buf[pos + 1]
                if inner < 128:
                    pos += 2
                else:
                    inner, pos = read_varint(buf, pos + 1)
                if field == 0x0A:
                    name = buf[pos : pos + inner].decode()
                elif field == 0x12:
                    value = _read_value(buf, pos, pos + inner)
                else:
                    raise ValueError(f"unexpected field tag {field} in an attribute entry")
                pos += inner
            if pos != stop:
                raise ValueError("attribute entry overruns the message")
            if value is not None:
                attrs[name] = value
        elif tag in _FIELD_NAMES:
            size = buf[pos]
            if size < 128:
                pos += 1
            else:
                size, pos = read_varint(buf, pos)
            text = buf[pos : pos + size].decode()
            if text:
                attrs[_FIELD_NAMES[tag]] = text
            pos += size
        elif tag in (BINARY, TEXT):
            size, pos = read_varint(buf, pos)
            data_tag, data = tag, buf[pos : pos + size]
            pos += size
        elif tag == PROTO:
            size, pos = read_varint(buf, pos)
            stop, type_url, data = pos + size, "", b""
            while pos < stop:
                field = buf[pos]
                inner, pos = read_varint(buf, pos + 1)
                if field == 0x0A:
                    type_url = buf[pos : pos + inner].decode()
                elif field == 0x12:
                    data = buf[pos : pos + inner]
                pos += inner
            data_tag = PROTO
        else:
            pos = _skip(buf, pos, tag & 7) if tag < 128 else _skip_long_tag(buf, pos - 1)
    if pos != end:
        raise ValueError(f"message overruns its {end} bytes")
    return attrs, data_tag, data, type_url
