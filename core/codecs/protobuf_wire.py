"""The CloudEvents Protobuf format's wire bytes, written directly (cloudevents.proto).

Building a upb message field by field from Python costs more than the whole
JSON round trip. The spec's message is fixed, so this module writes its
protobuf encoding as a list of byte strings, with bounded memos for what
repeats from event to event: the header of a string attribute's map entry per
name and length, and the seconds of a timestamp (they change once a second).
It also holds what the reading half (`polybus.core.codecs.protobuf_read`) shares:
varints, field tags and the attribute name sets. Tests check the bytes against
the protobuf runtime.

    CloudEvent: 1 id, 2 source, 3 spec_version, 4 type (strings),
      5 attributes (map<string, CloudEventAttributeValue>),
      oneof data { 6 binary_data, 7 text_data, 8 proto_data (google.protobuf.Any) }
    CloudEventAttributeValue: oneof { 1 ce_boolean, 2 ce_integer, 3 ce_string,
      4 ce_bytes, 5 ce_uri, 6 ce_uri_ref, 7 ce_timestamp (google.protobuf.Timestamp) }
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from polybus.core.codecs.wire import LOW14, remember

MASK32, MASK64 = (1 << 32) - 1, (1 << 64) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REQUIRED = frozenset(("id", "source", "specversion", "type"))
FIELD_NAMES = {0x0A: "id", 0x12: "source", 0x1A: "specversion", 0x22: "type"}
_REQUIRED_AND_REPLACED = REQUIRED | {"datacontenttype", "dataschema"}
CONTEXT_STRINGS = frozenset(("datacontenttype", "dataschema", "subject"))
STANDARD = REQUIRED | CONTEXT_STRINGS | {"time"}
BINARY, TEXT, PROTO = 0x32, 0x3A, 0x42  # tags of the data oneof's members
MAX_FIELD = (1 << 29) - 1  # the largest field number protobuf allows
_NAMES_LIMIT = 256  # attribute names with header tables (a table holds up to 123 headers)


class Unusual(ValueError):
    """Bytes this reader does not take the way upb would for certain: parse them with upb."""


def varint(n: int) -> bytes:
    """The protobuf base-128 varint of `n` (negative numbers as 64-bit two's complement)."""
    n &= MASK64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


UV = [varint(n) for n in range(16384)]  # lengths: one list index


def _len(n: int) -> bytes:
    return UV[n] if n < 16384 else varint(n)


# --- writing ------------------------------------------------------------------------------

_KEYS: dict[str, bytes] = {}  # attribute name -> map entry key field (tag, length, UTF-8)
_STRING_HEADS: dict[str, list[bytes]] = {}  # name -> entry header by short string length
_TIME_HEADS: dict[str, list[bytes]] = {}  # name -> entry header by Timestamp length
_SECONDS: dict[int, bytes] = {}  # Timestamp seconds -> its field (tag 1, varint)


def _key(name: str) -> bytes:
    raw = name.encode()
    return remember(_KEYS, name, b"\x0a" + _len(len(raw)) + raw, _NAMES_LIMIT)


def _heads(name: str, tag: int, table: dict[str, list[bytes]], most: int = 123) -> list[bytes]:
    """A map entry's bytes before the payload of its value's member `tag`, by payload length.

    Covers lengths up to `most` whose entry fits in 127 bytes (every length one byte).
    """
    key = _KEYS.get(name) or _key(name)
    found = [
        bytes((0x2A, len(key) + 4 + n)) + key + bytes((0x12, n + 2, tag, n))
        for n in range(min(124 - len(key), most + 1))
    ]
    return remember(table, name, found, _NAMES_LIMIT)


def _entry(name: str, inner: bytes) -> bytes:
    """A map entry: key `name`, value the CloudEventAttributeValue message `inner`."""
    key = _KEYS.get(name) or _key(name)
    body = key + b"\x12" + _len(len(inner)) + inner
    return b"\x2a" + _len(len(body)) + body


_REPLACED: dict[tuple[str, str], bytes] = {}  # (name, value) -> the map entry
_TYPE_URLS: dict[str, bytes] = {}  # an Any's type URL -> its field 1 (empty for "")


def _replaced(name: str, value: str) -> bytes:
    return remember(_REPLACED, (name, value), _entry(name, _attribute_value(name, value)))


def _type_url(url: str) -> bytes:
    raw = url.encode()
    return remember(_TYPE_URLS, url, b"\x0a" + _len(len(raw)) + raw if raw else b"")


def _seconds(seconds: int) -> bytes:
    return remember(_SECONDS, seconds, b"\x08" + varint(seconds) if seconds else b"")


def _timestamp_body(value: datetime) -> bytes:
    """A google.protobuf.Timestamp message (zero fields left out, as proto3 writes it)."""
    delta = value - EPOCH
    seconds = delta.days * 86400 + delta.seconds
    head = _SECONDS.get(seconds) or _seconds(seconds)
    nanos = delta.microseconds * 1000
    if nanos < 16384:
        return head + b"\x10" + UV[nanos] if nanos else head
    if nanos < 1 << 28:
        return b"".join((head, b"\x10", LOW14[nanos & 16383], UV[nanos >> 14]))
    return b"".join(
        (head, b"\x10", LOW14[nanos & 16383], LOW14[nanos >> 14 & 16383], UV[nanos >> 28])
    )


def _time_entry(name: str, value: datetime) -> bytes:
    body = _timestamp_body(value)
    heads = _TIME_HEADS.get(name) or _heads(name, 0x3A, _TIME_HEADS, 17)  # at most 1+10+1+5
    return (
        heads[len(body)] + body
        if len(body) < len(heads)
        else _entry(name, b"\x3a" + _len(len(body)) + body)
    )


def _attribute_value(name: str, value: Any) -> bytes:
    """The CloudEventAttributeValue message of one attribute."""
    kind = type(value)
    if kind is str:
        raw = value.encode()
        return (b"\x2a" if name == "dataschema" else b"\x1a") + _len(len(raw)) + raw
    if kind is datetime:
        body = _timestamp_body(value)
        return b"\x3a" + _len(len(body)) + body
    if kind is bool:
        return b"\x08\x01" if value else b"\x08\x00"
    if kind is int:
        return b"\x10" + varint(value)
    if kind is bytes:
        return b"\x22" + _len(len(value)) + value
    raw = str(value).encode()
    return b"\x1a" + _len(len(raw)) + raw


def write_protobuf(
    attrs: Mapping[str, Any],
    data_tag: int = 0,
    data: bytes = b"",
    type_url: str = "",
    datacontenttype: str | None = None,
    dataschema: str | None = None,
) -> bytes:
    """A CloudEvent message: required attributes in fields 1-4, the others in the map, then data.

    `data_tag` is BINARY, TEXT or PROTO (data already bytes: UTF-8 text, or the
    message for PROTO, packed in an Any with `type_url`); 0 for no data.
    A `datacontenttype` or `dataschema` given here replaces the attribute's
    own (schema-encoded data), without copying the attributes. Fields come in
    number order, as upb writes them; map entries in the attributes' order
    (protobuf leaves the order of map entries to the writer).
    """
    get = attrs.get
    value = get("id")
    if value:
        raw = value.encode()
        parts = [b"\x0a", UV[len(raw)] if len(raw) < 16384 else varint(len(raw)), raw]
    else:
        parts = []
    add = parts.append
    value = get("source")
    if value:
        raw = value.encode()
        add(b"\x12")
        add(UV[len(raw)] if len(raw) < 16384 else varint(len(raw)))
        add(raw)
    value = get("specversion")
    if value == "1.0":
        add(b"\x1a\x031.0")
    elif value:
        raw = value.encode()
        add(b"\x1a" + _len(len(raw)) + raw)
    value = get("type")
    if value:
        raw = value.encode()
        add(b"\x22")
        add(UV[len(raw)] if len(raw) < 16384 else varint(len(raw)))
        add(raw)
    heads = _STRING_HEADS
    replace = datacontenttype is not None or dataschema is not None
    skip = _REQUIRED_AND_REPLACED if replace else REQUIRED
    for name, value in attrs.items():
        if type(value) is str:
            if name in skip:
                continue
            raw = value.encode()
            table = heads.get(name) or _heads(name, 0x2A if name == "dataschema" else 0x1A, heads)
            if len(raw) < len(table):
                add(table[len(raw)])
                add(raw)
            else:
                add(_entry(name, _attribute_value(name, value)))
        elif type(value) is datetime and name not in skip:
            add(_time_entry(name, value))
        elif value is not None and name not in skip:
            add(_entry(name, _attribute_value(name, value)))
    if replace:  # the replaced attributes, after the others
        for name, value in (("datacontenttype", datacontenttype), ("dataschema", dataschema)):
            if value is None:
                value = get(name)
            if type(value) is str:  # a content type and a schema URI: the same for many events
                add(_REPLACED.get((name, value)) or _replaced(name, value))
            elif value is not None:
                add(_entry(name, _attribute_value(name, value)))
    if data_tag == PROTO:  # an Any: type_url, value, each left out when empty (proto3)
        url = _TYPE_URLS.get(type_url) or _type_url(type_url)
        size = len(data)
        add(b"\x42")
        if data:
            add(_len(len(url) + 1 + len(UV[size] if size < 16384 else varint(size)) + size))
            add(url)
            add(b"\x12")
            add(UV[size] if size < 16384 else varint(size))
            add(data)
        else:
            add(_len(len(url)))
            add(url)
    elif data_tag:
        add(b"\x32" if data_tag == BINARY else b"\x3a")
        add(UV[len(data)] if len(data) < 16384 else varint(len(data)))
        add(data)
    return b"".join(parts)
