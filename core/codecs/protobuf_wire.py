"""The CloudEvents Protobuf format's wire bytes, written and read directly (cloudevents.proto).

Building a upb message field by field from Python, then turning it back into
a dict, costs more than the whole JSON round trip. The spec's message is
fixed, so this module writes its protobuf encoding as a list of byte strings
and reads it in one pass, with bounded memos for what repeats from event to
event: the header of a string attribute's map entry per name and length, the
seconds of a timestamp (they change once a second), and whole map entries
on the way in (keyed by their bytes). Unknown fields are skipped, as protobuf
readers must; whatever the reader cannot be sure to take exactly as upb does
(groups, duplicate messages upb would merge, non-minimal tags, an attribute
value with no member or several) raises `Unusual`, and the caller parses those
bytes with upb instead. Tests check both directions against the protobuf runtime.

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

from core.events import is_extension_name

_MASK32, _MASK64 = (1 << 32) - 1, (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REQUIRED = frozenset(("id", "source", "specversion", "type"))
_FIELD_NAMES = {0x0A: "id", 0x12: "source", 0x1A: "specversion", 0x22: "type"}
_REQUIRED_AND_REPLACED = _REQUIRED | {"datacontenttype", "dataschema"}
_CONTEXT_STRINGS = frozenset(("datacontenttype", "dataschema", "subject"))
_STANDARD = _REQUIRED | _CONTEXT_STRINGS | {"time"}
BINARY, TEXT, PROTO = 0x32, 0x3A, 0x42  # tags of the data oneof's members
_MAX_FIELD = (1 << 29) - 1  # the largest field number protobuf allows
MEMO_LIMIT = 4096  # entries per memo; a memo is emptied when it reaches this
_NAMES_LIMIT = 256  # attribute names with header tables (a table holds up to 123 headers)


class Unusual(ValueError):
    """Bytes this reader does not take the way upb would for certain: parse them with upb."""


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
# The two low bytes of a longer varint: each 14-bit value with both continuation bits set
# (16,384 two-byte strings, ~0.6 MB), so a timestamp's nanos take two list indexes.
LOW14 = [bytes(((n & 127) | 128, (n >> 7) | 128)) for n in range(16384)]


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


# --- writing ------------------------------------------------------------------------------

_KEYS: dict[str, bytes] = {}  # attribute name -> map entry key field (tag, length, UTF-8)
_STRING_HEADS: dict[str, list[bytes]] = {}  # name -> entry header by short string length
_TIME_HEADS: dict[str, list[bytes]] = {}  # name -> entry header by Timestamp length
_SECONDS: dict[int, bytes] = {}  # Timestamp seconds -> its field (tag 1, varint)


def _key(name: str) -> bytes:
    raw = name.encode()
    if len(_KEYS) >= _NAMES_LIMIT:
        _KEYS.clear()
    found = _KEYS[name] = b"\x0a" + _len(len(raw)) + raw
    return found


def _heads(name: str, tag: int, table: dict[str, list[bytes]], most: int = 123) -> list[bytes]:
    """A map entry's bytes before the payload of its value's member `tag`, by payload length.

    Covers lengths up to `most` whose entry fits in 127 bytes (every length one byte).
    """
    key = _KEYS.get(name) or _key(name)
    found = [
        bytes((0x2A, len(key) + 4 + n)) + key + bytes((0x12, n + 2, tag, n))
        for n in range(min(124 - len(key), most + 1))
    ]
    if len(table) >= _NAMES_LIMIT:
        table.clear()
    table[name] = found
    return found


def _entry(name: str, inner: bytes) -> bytes:
    """A map entry: key `name`, value the CloudEventAttributeValue message `inner`."""
    key = _KEYS.get(name) or _key(name)
    body = key + b"\x12" + _len(len(inner)) + inner
    return b"\x2a" + _len(len(body)) + body


_REPLACED: dict[tuple[str, str], bytes] = {}  # (name, value) -> the map entry
_TYPE_URLS: dict[str, bytes] = {}  # an Any's type URL -> its field 1 (empty for "")


def _replaced(name: str, value: str) -> bytes:
    if len(_REPLACED) >= MEMO_LIMIT:
        _REPLACED.clear()
    found = _REPLACED[(name, value)] = _entry(name, _attribute_value(name, value))
    return found


def _type_url(url: str) -> bytes:
    raw = url.encode()
    if len(_TYPE_URLS) >= MEMO_LIMIT:
        _TYPE_URLS.clear()
    found = _TYPE_URLS[url] = b"\x0a" + _len(len(raw)) + raw if raw else b""
    return found


def _seconds(seconds: int) -> bytes:
    if len(_SECONDS) >= MEMO_LIMIT:
        _SECONDS.clear()
    found = _SECONDS[seconds] = b"\x08" + varint(seconds) if seconds else b""
    return found


def _timestamp_body(value: datetime) -> bytes:
    """A google.protobuf.Timestamp message (zero fields left out, as proto3 writes it)."""
    delta = value - _EPOCH
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
    skip = _REQUIRED_AND_REPLACED if replace else _REQUIRED
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


# --- reading ------------------------------------------------------------------------------

_ENTRIES: dict[bytes, tuple[str, Any]] = {}  # valid entry's bytes -> (name, value)
_SECOND_TIMES: dict[bytes, datetime] = {}  # a Timestamp's 5-byte seconds varint -> the instant
_INSTANTS: dict[bytes, tuple[str, datetime]] = {}  # timestamp entry but nanos -> name, second


def _skip(buf: bytes, pos: int, wire: int) -> int:
    """The position after an unknown field's value; groups and bad wire types are Unusual."""
    if wire == 0:
        return read_varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        size, pos = read_varint(buf, pos)
        return pos + size
    if wire == 5:
        return pos + 4
    raise Unusual(f"wire type {wire}")


def _skip_unknown(buf: bytes, pos: int, known: int) -> int:
    """Skip the field whose tag starts at `pos`; Unusual if it is one of fields 1..`known`.

    A field number the message has, with another wire type or a longer tag
    than needed, is left to upb.
    """
    tag, after = read_varint(buf, pos)
    if tag >> 3 <= known or tag >> 3 > _MAX_FIELD:
        raise Unusual(f"field {tag >> 3} with wire type {tag & 7}")
    return _skip(buf, after, tag & 7)


def _text(buf: bytes, pos: int) -> tuple[str, int]:
    size = buf[pos]
    if size < 128:
        pos += 1
    else:
        size, pos = read_varint(buf, pos)
    return buf[pos : pos + size].decode(), pos + size


# by the length of a varint (1-5 bytes): which bits to test, and what they must be
_NANOS_MASKS = (0, 0x80, 0x8080, 0x808080, 0x80808080, 0xF880808080)
_NANOS_BITS = (0, 0, 0x80, 0x8080, 0x808080, 0x80808080)


def _read_timestamp(buf: bytes, pos: int, end: int) -> datetime:
    """A Timestamp message in buf[pos:end] as a UTC datetime (micros, as message_fields reads it)."""
    size = end - pos - 7  # today's: tag, 5-byte seconds, tag, 1 to 5 bytes of nanos
    if 0 < size < 6 and buf[pos] == 0x08 and buf[pos + 6] == 0x10:
        base = _SECOND_TIMES.get(buf[pos + 1 : pos + 6])
        raw = int.from_bytes(buf[pos + 7 : end], "little")
        # continuation bits on all but the last byte; five bytes hold under 2**31 (an int32)
        if base is not None and raw & _NANOS_MASKS[size] == _NANOS_BITS[size]:
            nanos = (
                (raw & 127)
                | (raw >> 1 & 0x3F80)
                | (raw >> 2 & 0x1FC000)
                | (raw >> 3 & 0xFE00000)
                | (raw >> 4 & 0x70000000)
            )
            return base + timedelta(0, 0, nanos // 1000)
    seconds = nanos = 0
    start = pos
    while pos < end:
        field = buf[pos]
        if field == 0x08:
            seconds, pos = read_varint(buf, pos + 1)
            seconds &= _MASK64
        elif field == 0x10:
            nanos, pos = read_varint(buf, pos + 1)
            nanos &= _MASK32
        else:
            pos = _skip_unknown(buf, pos, 2)
    if pos != end:
        raise ValueError("timestamp overruns its value")
    if seconds >> 63:
        seconds -= 1 << 64
    if nanos >> 31:
        nanos -= 1 << 32
    if 1 << 28 <= seconds < 1 << 35 and buf[start] == 0x08:
        _remember_seconds(buf, start + 1, seconds)
    try:
        return _EPOCH + timedelta(0, seconds, nanos // 1000)
    except OverflowError as exc:  # beyond datetime's years 1-9999: junk, like any bad value
        raise ValueError(f"timestamp of {seconds} s is out of range") from exc


def _remember_seconds(buf: bytes, pos: int, seconds: int) -> None:
    """Memoise the instant of a 5-byte seconds varint at `pos` (if it is one and says `seconds`)."""
    if read_varint(buf, pos) == (seconds, pos + 5):
        if len(_SECOND_TIMES) >= MEMO_LIMIT:
            _SECOND_TIMES.clear()
        _SECOND_TIMES[buf[pos : pos + 5]] = _EPOCH + timedelta(0, seconds)


def _remember_instant(entry: bytes, name: str, value: datetime) -> None:
    """Memoise a timestamp entry's bytes before its 5-byte nanos: name and whole second.

    Only for the layout key, value(ce_timestamp(seconds: 5 bytes, nanos: 5 bytes)),
    and names validation passes.
    """
    named = name == "time" or (name not in _STANDARD and is_extension_name(name))
    if named and read_varint(entry, len(entry) - 11) == (
        (value - _EPOCH).days * 86400 + (value - _EPOCH).seconds,
        len(entry) - 6,
    ):
        if len(_INSTANTS) >= MEMO_LIMIT:
            _INSTANTS.clear()
        _INSTANTS[entry[:-5]] = (name, value.replace(microsecond=0))


def _read_value(buf: bytes, pos: int, end: int) -> Any:
    """The value of a CloudEventAttributeValue in buf[pos:end]; Unusual unless one member is set."""
    value: Any = None
    members = 0
    while pos < end:
        tag = buf[pos]
        if tag == 0x1A or tag == 0x2A or tag == 0x32:  # ce_string, ce_uri, ce_uri_ref
            value, pos = _text(buf, pos + 1)
        elif tag == 0x3A:  # ce_timestamp
            size, pos = read_varint(buf, pos + 1)
            value = _read_timestamp(buf, pos, pos + size)
            pos += size
        elif tag == 0x08:  # ce_boolean
            raw, pos = read_varint(buf, pos + 1)
            value = raw & _MASK64 != 0
        elif tag == 0x10:  # ce_integer: int32, upb keeps the low 32 bits
            raw, pos = read_varint(buf, pos + 1)
            raw &= _MASK32
            value = raw - (1 << 32) if raw >> 31 else raw
        elif tag == 0x22:  # ce_bytes
            size, pos = read_varint(buf, pos + 1)
            value = buf[pos : pos + size]
            pos += size
        else:
            pos = _skip_unknown(buf, pos, 7)
            continue
        members += 1
    if pos != end:
        raise ValueError("attribute value overruns its entry")
    if members != 1:  # none: no attribute; several: upb may merge them
        raise Unusual(f"{members} members set in an attribute value")
    return value


def _read_entry(entry: bytes) -> tuple[str, Any]:
    """(name, value) of one attributes map entry's bytes, in any shape."""
    name, value, values = "", None, 0
    pos, end = 0, len(entry)
    while pos < end:
        field = entry[pos]
        if field == 0x0A:
            name, pos = _text(entry, pos + 1)
        elif field == 0x12:
            size, pos = read_varint(entry, pos + 1)
            value = _read_value(entry, pos, pos + size)
            pos += size
            values += 1
        else:
            pos = _skip_unknown(entry, pos, 2)
    if pos != end:
        raise ValueError("attribute entry overruns the message")
    if values != 1:  # none: no attribute; several: upb merges them
        raise Unusual(f"attribute entry {name!r} with {values} values")
    return name, value


def _new_entry(entry: bytes) -> tuple[str, Any, bool]:
    """(name, value, whether validation would pass it) of a map entry not in the memo.

    Only entries validation passes go into the memo.
    """
    size = len(entry)
    if size > 16 and entry[-6] == 0x10:  # perhaps an instant in a second met before
        found = _INSTANTS.get(entry[:-5])
        if found is not None:
            raw = int.from_bytes(entry[-5:], "little")
            if raw & 0xF880808080 == 0x0080808080:  # 5-byte nanos under 2**31
                nanos = (
                    (raw & 127)
                    | (raw >> 1 & 0x3F80)
                    | (raw >> 2 & 0x1FC000)
                    | (raw >> 3 & 0xFE00000)
                    | (raw >> 4 & 0x70000000)
                )
                return found[0], found[1] + timedelta(0, 0, nanos // 1000), True
    at = entry[1] + 2  # the common shape: key, then the value with one member, short lengths
    if entry[0] == 0x0A and at < 130 and entry[at] == 0x12 and entry[at + 1] == size - at - 2:
        name = entry[2:at].decode()
        tag = entry[at + 2]
        if entry[at + 3] != size - at - 4:
            name, value = _read_entry(entry)
        elif tag == 0x1A or tag == 0x2A or tag == 0x32:
            value = entry[at + 4 :].decode()
        elif tag == 0x3A:
            value = _read_timestamp(entry, at + 4, size)
            if size - at == 16 and entry[at + 4] == 0x08 and entry[at + 10] == 0x10:
                _remember_instant(entry, name, value)
        else:
            name, value = _read_entry(entry)
    else:
        name, value = _read_entry(entry)
    if name in _REQUIRED:  # upb reads it over field 1-4's value: rare enough to leave to upb
        raise Unusual(f"required attribute {name!r} in the attributes map")
    if name in _CONTEXT_STRINGS:
        valid = type(value) is str and value != ""
    elif name == "time":
        valid = type(value) is datetime
    else:
        valid = is_extension_name(name)
    if valid and type(value) is not datetime:  # instants seldom repeat: not worth keeping
        if len(_ENTRIES) >= MEMO_LIMIT:
            _ENTRIES.clear()
        _ENTRIES[entry] = (name, value)
    return name, value, valid


def _read_any(buf: bytes, pos: int, end: int) -> tuple[str, bytes]:
    type_url, value = "", b""
    while pos < end:
        field = buf[pos]
        if field == 0x0A:
            type_url, pos = _text(buf, pos + 1)
        elif field == 0x12:
            size, pos = read_varint(buf, pos + 1)
            value = buf[pos : pos + size]
            pos += size
        else:
            pos = _skip_unknown(buf, pos, 2)
    if pos != end:
        raise ValueError("proto_data overruns the message")
    return type_url, value


def read_event_checked(buf: bytes) -> tuple[dict[str, Any], int, bytes | str, str, bool]:
    """(attributes, data tag, data (text as a str), Any type URL, whether to validate).

    Attributes keep protobuf's types (time a UTC datetime); absent or empty
    required fields are left out, since proto3 cannot tell them apart.
    Raises ValueError or IndexError for bytes that are no message, `Unusual`
    for what to leave to upb.

    The message fixes most types; the flag is False only when every required
    attribute is there, specversion is 1.0, and each map entry is one
    validation passes (a non-empty string for subject, datacontenttype and
    dataschema, an instant for time, an extension name otherwise), so a caller
    may skip validation. This path reads what upb writes (fields in number
    order, short lengths); anything else goes through `_read_general`.
    """
    try:
        return _read_fast(buf)
    except IndexError:  # too short for the common layout: junk, or a message without much in it
        return _read_general(buf)


def _read_fast(buf: bytes) -> tuple[dict[str, Any], int, bytes | str, str, bool]:
    """`read_event_checked` for fields 1-4 in order with short non-empty values, specversion 1.0."""
    if buf[0] != 0x0A or not 0 < buf[1] < 128:
        return _read_general(buf)
    pos = 2 + buf[1]
    attrs: dict[str, Any] = {"id": buf[2:pos].decode()}
    if buf[pos] != 0x12 or not 0 < buf[pos + 1] < 128:
        return _read_general(buf)
    start = pos + 2
    pos = start + buf[pos + 1]
    attrs["source"] = buf[start:pos].decode()
    if buf[pos : pos + 5] != b"\x1a\x031.0":
        return _read_general(buf)
    attrs["specversion"] = "1.0"
    pos += 5
    if buf[pos] != 0x22 or not 0 < buf[pos + 1] < 128:
        return _read_general(buf)
    start = pos + 2
    pos = start + buf[pos + 1]
    attrs["type"] = buf[start:pos].decode()
    suspect = False
    memo = _ENTRIES
    end = len(buf)
    while pos < end and buf[pos] == 0x2A:
        size = buf[pos + 1]
        if size > 127:
            return _read_general(buf)
        start = pos + 2
        pos = start + size
        entry = buf[start:pos]
        found = memo.get(entry)
        if found is None:
            name, value, valid = _new_entry(entry)
            attrs[name] = value
            suspect = suspect or not valid
        else:
            attrs[found[0]] = found[1]
    if pos >= end:
        if pos > end:
            raise ValueError(f"message overruns its {end} bytes")
        return attrs, 0, b"", "", suspect
    tag = buf[pos]
    size = buf[pos + 1]
    if size < 128:
        start = pos + 2
    else:
        size, start = read_varint(buf, pos + 1)
    pos = start + size
    if pos != end:  # fields after the data, or the data overruns: the general reader sorts it out
        return _read_general(buf)
    if tag == TEXT:
        return attrs, TEXT, buf[start:pos].decode(), "", suspect  # a proto3 string: valid UTF-8
    if tag == BINARY:
        return attrs, BINARY, buf[start:pos], "", suspect
    if tag == PROTO:
        if buf[start] == 0x0A and buf[start + 1] < 128:  # type_url then value, as upb writes
            url_end = start + 2 + buf[start + 1]
            if url_end < pos and buf[url_end] == 0x12:
                size = buf[url_end + 1]
                if size < 128:
                    value = url_end + 2
                else:
                    size, value = read_varint(buf, url_end + 1)
                if value + size == pos:
                    url = buf[start + 2 : url_end].decode()
                    return attrs, PROTO, buf[value:pos], url, suspect
        type_url, data = _read_any(buf, start, pos)
        return attrs, PROTO, data, type_url, suspect
    return _read_general(buf)


def _read_general(buf: bytes) -> tuple[dict[str, Any], int, bytes | str, str, bool]:
    """`read_event_checked` for any field order and length, unknown fields skipped."""
    attrs: dict[str, Any] = {}
    suspect = False
    data_tag, data, type_url = 0, b"", ""
    text: bytes | str = b""
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]
        if tag & 7 != 2 or tag > 0x42 or tag < 0x0A:  # not one of fields 1-8 as written
            pos = _skip_unknown(buf, pos, 8)
            continue
        size, start = read_varint(buf, pos + 1)
        pos = start + size
        if tag == 0x2A:
            entry = buf[start:pos]
            found = _ENTRIES.get(entry)
            if found is None:
                name, value, valid = _new_entry(entry)
                attrs[name] = value
                suspect = suspect or not valid
            else:
                attrs[found[0]] = found[1]
        elif tag < 0x2A:  # id, source, spec_version, type
            value = buf[start:pos].decode()
            if value:
                attrs[_FIELD_NAMES[tag]] = value
            else:  # the last one counts, and an empty one reads as absent
                attrs.pop(_FIELD_NAMES[tag], None)
        elif tag == TEXT:
            data_tag, text = TEXT, buf[start:pos].decode()
        elif tag == BINARY:
            data_tag, data = BINARY, buf[start:pos]
        else:  # proto_data
            if data_tag == PROTO:
                raise Unusual("proto_data twice in a row (upb merges them)")
            data_tag = PROTO
            type_url, data = _read_any(buf, start, pos)
    if pos != end:
        raise ValueError(f"message overruns its {end} bytes")
    get = attrs.get
    if get("specversion") != "1.0" or not (get("id") and get("source") and get("type")):
        suspect = True
    return attrs, data_tag, (text if data_tag == TEXT else data), type_url, suspect


def read_protobuf(buf: bytes) -> tuple[dict[str, Any], int, bytes, str]:
    """(attributes, data tag, data bytes, Any type URL): `read_event_checked` without the flag."""
    attrs, data_tag, data, type_url, _ = read_event_checked(buf)
    return attrs, data_tag, data.encode() if isinstance(data, str) else data, type_url
