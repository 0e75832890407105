"""The CloudEvents Protobuf format's wire bytes, read directly (cloudevents.proto).

The reading half of `polybus.core.codecs.protobuf_wire` (which writes, and holds the
varints and field tags both halves share). One pass over the message, with
bounded memos for what repeats from event to event: whole map entries (keyed
by their bytes) and the seconds of a timestamp (they change once a second).
Unknown fields are skipped, as protobuf readers must; whatever this reader
cannot be sure to take exactly as upb does (groups, duplicate messages upb
would merge, non-minimal tags, an attribute value with no member or several)
raises `Unusual`, and the caller parses those bytes with upb instead. Tests
check it against the protobuf runtime.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from polybus.core.codecs.protobuf_wire import (
    BINARY,
    CONTEXT_STRINGS,
    EPOCH,
    FIELD_NAMES,
    MASK32,
    MASK64,
    MAX_FIELD,
    PROTO,
    REQUIRED,
    STANDARD,
    TEXT,
    Unusual,
)
from polybus.core.codecs.wire import read_varint, remember
from polybus.core.events import is_extension_name

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
    if tag >> 3 <= known or tag >> 3 > MAX_FIELD:
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
            seconds &= MASK64
        elif field == 0x10:
            nanos, pos = read_varint(buf, pos + 1)
            nanos &= MASK32
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
        return EPOCH + timedelta(0, seconds, nanos // 1000)
    except OverflowError as exc:  # beyond datetime's years 1-9999: junk, like any bad value
        raise ValueError(f"timestamp of {seconds} s is out of range") from exc


def _remember_seconds(buf: bytes, pos: int, seconds: int) -> None:
    """Memoise the instant of a 5-byte seconds varint at `pos` (if it is one and says `seconds`)."""
    if read_varint(buf, pos) == (seconds, pos + 5):
        remember(_SECOND_TIMES, buf[pos : pos + 5], EPOCH + timedelta(0, seconds))


def _remember_instant(entry: bytes, name: str, value: datetime) -> None:
    """Memoise a timestamp entry's bytes before its 5-byte nanos: name and whole second.

    Only for the layout key, value(ce_timestamp(seconds: 5 bytes, nanos: 5 bytes)),
    and names validation passes.
    """
    named = name == "time" or (name not in STANDARD and is_extension_name(name))
    if named and read_varint(entry, len(entry) - 11) == (
        (value - EPOCH).days * 86400 + (value - EPOCH).seconds,
        len(entry) - 6,
    ):
        remember(_INSTANTS, entry[:-5], (name, value.replace(microsecond=0)))


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
            value = raw & MASK64 != 0
        elif tag == 0x10:  # ce_integer: int32, upb keeps the low 32 bits
            raw, pos = read_varint(buf, pos + 1)
            raw &= MASK32
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
    if name in REQUIRED:  # upb reads it over field 1-4's value: rare enough to leave to upb
        raise Unusual(f"required attribute {name!r} in the attributes map")
    if name in CONTEXT_STRINGS:
        valid = type(value) is str and value != ""
    elif name == "time":
        valid = type(value) is datetime
    else:
        valid = is_extension_name(name)
    if valid and type(value) is not datetime:  # instants seldom repeat: not worth keeping
        remember(_ENTRIES, entry, (name, value))
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
                attrs[FIELD_NAMES[tag]] = value
            else:  # the last one counts, and an empty one reads as absent
                attrs.pop(FIELD_NAMES[tag], None)
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
