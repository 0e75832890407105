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

Written and read directly against the fixed schema (fastavro only for the
record API). The writer puts the attributes that repeat from event to event
first (specversion, type, datacontenttype, dataschema, then source, id,
subject, time, extensions in the event's order) and writes them from the last
event's bytes when the values match; the reader takes the same run from the
last event's values when the bytes match, and knows which checks the schema
already made, so `validate_attributes` runs only for a suspect event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from core.codecs.avro_data_union import (
    MEMO_LIMIT,
    avro_string,
    data_parts,
    event_data_parts,
    from_record_value,
    parse_json_bytes,
    read_count,
    read_data,
    read_length,
    read_text,
    record_data,
)
from core.codecs.avro_wire import HALF, ZZ, long_bytes, read_long
from core.errors import EventValidationError, Problem
from core.events import INT32, build_event, is_extension_name, validate_attributes
from core.formats import is_json_content_type, parse_time

CONTENT_TYPE = "application/cloudevents+avro"
SPECVERSION = "1.0"

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


def _time_text(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _attribute_map(event: CloudEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        out[name] = _time_text(value) if type(value) is datetime else value
    return out


# --- Avro strings and bounded memos of their bytes -----------------------------------------

_STRING, _BOOLEAN, _INT, _BYTES = b"\x06", b"\x02", b"\x04", b"\x08"  # attribute union indexes
_KEYS: dict[str, bytes] = {}  # attribute name -> its Avro string (length + UTF-8)
_TEXT_KEYS: dict[str, bytes] = {}  # the same followed by the string branch index


def _key(name: str) -> bytes:
    if len(_KEYS) >= MEMO_LIMIT:
        _KEYS.clear()
        _TEXT_KEYS.clear()
    found = _KEYS[name] = avro_string(name)
    _TEXT_KEYS[name] = found + _STRING
    return found


def _text_key(name: str) -> bytes:
    _key(name)
    return _TEXT_KEYS[name]


# --- the attribute map, written directly --------------------------------------------------

_STANDARD = frozenset(
    ("id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject", "time")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SOURCE_KEY, _ID_KEY, _SUBJECT_KEY, _TIME_KEY = (
    _text_key(name) for name in ("source", "id", "subject", "time")
)
_HEAD_KEYS = tuple(
    (name, _text_key(name)) for name in ("specversion", "type", "datacontenttype", "dataschema")
)
_NOTHING = object()  # matches no attribute value

# The run written first (specversion, type, datacontenttype, dataschema): the last
# values, their entries' bytes and how many entries; then the last source and its entry.
_last_head: tuple[Any, Any, Any, Any, bytes, int] = (_NOTHING,) * 4 + (b"", 0)
_last_source: tuple[Any, bytes] = (_NOTHING, b"")


def _head(spec: Any, type_: Any, content_type: Any, schema: Any) -> tuple[bytes, int] | None:
    """The head run's bytes and entry count, remembered as the last; None unless all are text."""
    global _last_head
    values = (spec, type_, content_type, schema)
    if type(spec) is not str or type(type_) is not str:
        return None
    entries = []
    for (_, key), value in zip(_HEAD_KEYS, values, strict=True):
        if value is None:
            continue
        if type(value) is not str:
            return None
        entries.append(key + avro_string(value))
    head = b"".join(entries)
    _last_head = (*values, head, len(entries))
    return head, len(entries)


# The "time" entry of an instant in UTC with microseconds: a %-template of the whole entry
# per second since the epoch, so the second is formatted once and each event adds its micros.
_SECOND_TEMPLATES: dict[int, bytes] = {}


def _time_entry(value: datetime) -> bytes:
    if value.tzinfo is UTC:
        micros = value.microsecond
        if micros:
            delta = value - _EPOCH
            second = delta.days * 86400 + delta.seconds
            template = _SECOND_TEMPLATES.get(second)
            if template is None:
                template = _second_template(value, second)
            return template % micros
    return _TIME_KEY + avro_string(_time_text(value))


def _second_template(value: datetime, second: int) -> bytes:
    if len(_SECOND_TEMPLATES) >= MEMO_LIMIT:
        _SECOND_TEMPLATES.clear()
    whole = value.isoformat()[:-13].encode()  # without ".ffffff+00:00"
    template = _TIME_KEY + long_bytes(len(whole) + 8) + whole.replace(b"%", b"%%") + b".%06dZ"
    _SECOND_TEMPLATES[second] = template
    return template


def _entry(name: str, value: Any) -> bytes:
    """One map entry (name, union branch, value); b"" for None."""
    kind = type(value)
    if kind is str:
        return (_TEXT_KEYS.get(name) or _text_key(name)) + avro_string(value)
    if value is None:
        return b""
    key = _KEYS.get(name) or _key(name)
    if kind is bool:
        return key + (b"\x02\x01" if value else b"\x02\x00")
    if kind is int:
        return key + _INT + long_bytes(value)
    if kind is bytes:
        return key + _BYTES + long_bytes(len(value)) + value
    if kind is datetime:
        return key + _STRING + avro_string(_time_text(value))
    return key + _STRING + avro_string(str(value))


def _extensions(attrs: Mapping[str, Any], names: set[str]) -> tuple[bytes, int]:
    """The extension entries in the event's order, and how many are not None."""
    if len(names) == 1:
        (name,) = names
        entry = _entry(name, attrs[name])
        return entry, 1 if entry else 0
    entries = [_entry(name, attrs[name]) for name in attrs if name in names]
    return b"".join(entries), sum(1 for e in entries if e)


def _write(
    attrs: Mapping[str, Any], content_type: Any, schema: Any, tail: bytes, payload: bytes
) -> bytes:
    """The record: the attribute map (head run first), then `tail` (the map's end and the
    data branch) and `payload`."""
    global _last_source
    get = attrs.get
    spec, type_ = get("specversion"), get("type")
    last = _last_head
    if type_ == last[1] and content_type == last[2] and schema == last[3] and spec == last[0]:
        head, count = last[4], last[5]
    else:
        found = _head(spec, type_, content_type, schema)
        if found is None:
            return _write_general(attrs, content_type, schema, tail, payload)
        head, count = found
    source: Any = get("source")
    subject: Any = get("subject")
    time: Any = get("time")
    id_: Any = get("id")
    try:  # lengths from the table; a string of 1 KiB or more takes the general path
        if source == _last_source[0]:
            source_entry = _last_source[1]
        else:
            raw = source.encode()
            source_entry = _SOURCE_KEY + ZZ[len(raw) + HALF] + raw
            _last_source = (source, source_entry)
        raw_id = id_.encode()
        if subject is None:
            subject_entry = b""
        else:
            raw = subject.encode()
            subject_entry = _SUBJECT_KEY + ZZ[len(raw) + HALF] + raw
            count += 1
        if time is None:
            time_entry = b""
        elif type(time) is datetime:
            time_entry = _time_entry(time)
            count += 1
        else:
            raise TypeError("time is not a datetime")
        standard = (
            8 - (get("datacontenttype") is None) - (get("dataschema") is None) - (subject is None)
        ) - (time is None)
        extensions = b""
        if len(attrs) > standard:
            names = attrs.keys() - _STANDARD
            if names:
                extensions, more = _extensions(attrs, names)
                count += more
        return b"".join(
            (
                ZZ[count + 2 + HALF],
                head,
                source_entry,
                _ID_KEY,
                ZZ[len(raw_id) + HALF],
                raw_id,
                subject_entry,
                time_entry,
                extensions,
                tail,
                payload,
            )
        )
    except (AttributeError, IndexError, TypeError):
        return _write_general(attrs, content_type, schema, tail, payload)


def _write_general(
    attrs: Mapping[str, Any], content_type: Any, schema: Any, tail: bytes, payload: bytes
) -> bytes:
    """Any attributes, in their own order (None values left out)."""
    get = attrs.get
    if content_type is not get("datacontenttype") or schema is not get("dataschema"):
        attrs = {**attrs, "datacontenttype": content_type, "dataschema": schema}
    entries = [_entry(name, value) for name, value in attrs.items()]
    entries = [e for e in entries if e]
    return b"".join((long_bytes(len(entries)), *entries, tail, payload))


def write_avro(
    attrs: Mapping[str, Any],
    data: bytes | str | None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
) -> bytes:
    """The Avro binary of the record: the attribute map, then the data union (bytes, text or none).

    A `datacontenttype` or `dataschema` given here replaces the attribute's own
    (schema-encoded data), without copying the attributes.
    """
    get = attrs.get
    content_type = get("datacontenttype") if datacontenttype is None else datacontenttype
    schema = get("dataschema") if dataschema is None else dataschema
    tail, payload = data_parts(data)
    return _write(attrs, content_type, schema, tail, payload)


def to_avro(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Avro format (schemaless Avro binary of cloudevents.avsc)."""
    attrs = event.get_attributes()
    content_type = attrs.get("datacontenttype")
    tail, payload = event_data_parts(event.get_data(), content_type)
    return _write(attrs, content_type, attrs.get("dataschema"), tail, payload)


def to_avro_record(event: CloudEvent) -> dict[str, Any]:
    """The event as a record of the spec's schema (for writers that batch or frame records)."""
    data, content_type = event.get_data(), event.get_attributes().get("datacontenttype")
    return {"attribute": _attribute_map(event), "data": record_data(data, content_type)}


# --- reading ---------------------------------------------------------------------------------


_STANDARD_NAME, _EXTENSION_NAME = 1, 2  # and 0: a name that is neither
_NAME_KINDS: dict[str, int] = dict.fromkeys(_STANDARD, _STANDARD_NAME)


def _name_kind(name: str) -> int:
    kind = _EXTENSION_NAME if is_extension_name(name) else 0
    if len(_NAME_KINDS) >= MEMO_LIMIT:
        _NAME_KINDS.clear()
        _NAME_KINDS.update(dict.fromkeys(_STANDARD, _STANDARD_NAME))
    _NAME_KINDS[name] = kind
    return kind


# The run of head entries the last event started with (its bytes, values and entry count),
# and the last source entry read right after it (bytes, value).
_read_head: tuple[bytes, dict[str, str], int] = (b"", {}, 0)
_read_source: tuple[bytes, str] = (b"", "")
_SOURCE_AT = len(_SOURCE_KEY)
_TEXT_ENTRIES = tuple(  # (name, key and string branch, its length), in the writer's order
    (name, key, len(key))
    for name, key in (("id", _ID_KEY), ("subject", _SUBJECT_KEY), ("time", _TIME_KEY))
)


def _learn_head(buf: bytes, pos: int, count: int, attrs: dict[str, Any]) -> tuple[int, int]:
    """Read the head entries at `pos` (non-empty text) and remember them: (position, count left)."""
    global _read_head
    start, values, taken = pos, {}, 0
    while taken < count:
        name = next((n for n, key in _HEAD_KEYS if buf.startswith(key, pos)), None)
        if name is None:
            break
        value, end = read_text(buf, pos + len(_TEXT_KEYS[name]))
        if not value:
            break
        values[name] = value
        pos = end
        taken += 1
    if taken:
        _read_head = (buf[start:pos], values, taken)
        attrs.update(values)
    return pos, count - taken


def _read(buf: bytes) -> tuple[dict[str, Any], Any, bool]:
    """(attributes with time as text, data, whether the attributes need `validate_attributes`).

    The schema fixes that standard attributes are text (any other branch is
    suspect); what it cannot rule out is an empty string, a null, a bad
    extension name or an int beyond 32 bits: each of those sets the flag.
    """
    global _read_source
    attrs: dict[str, Any] = {}
    value: Any
    suspect = False
    count = buf[0]
    if count < 128 and not count & 1:
        count >>= 1
        pos = 1
    else:
        count, pos = read_count(buf, 0)
    if count:
        head, values, taken = _read_head
        if taken <= count and buf.startswith(head, pos) and taken:
            attrs.update(values)
            pos += len(head)
            count -= taken
        else:
            pos, count = _learn_head(buf, pos, count, attrs)
        # source, id, subject, time: where the writer puts them, their names known from the key bytes
        if count and buf.startswith(_SOURCE_KEY, pos):
            entry, value = _read_source
            if buf.startswith(entry, pos) and entry:
                pos += len(entry)
            else:
                start = pos
                value, pos = read_text(buf, pos + _SOURCE_AT)
                _read_source = (buf[start:pos], value)
                suspect = suspect or not value
            attrs["source"] = value
            count -= 1
        for name, key, skip in _TEXT_ENTRIES:
            if count and buf.startswith(key, pos):
                value, pos = read_text(buf, pos + skip)
                attrs[name] = value
                suspect = suspect or not value
                count -= 1
        while True:
            for _ in range(count):
                size = buf[pos]
                if size < 128 and not size & 1:
                    end = pos + 1 + (size >> 1)
                    name = buf[pos + 1 : end].decode()
                else:
                    name, end = read_text(buf, pos)
                kind = _NAME_KINDS.get(name)
                if kind is None:
                    kind = _name_kind(name)
                branch = buf[end]
                pos = end + 1
                if branch == 6:
                    size = buf[pos]
                    if size < 128 and not size & 1:
                        end = pos + 1 + (size >> 1)
                        value = buf[pos + 1 : end].decode()
                        pos = end
                    else:
                        value, pos = read_text(buf, pos)
                    if not value:
                        suspect = True
                elif branch == 2:
                    value = buf[pos] != 0  # as fastavro: any byte but 0 is true
                    pos += 1
                    suspect = suspect or kind != _EXTENSION_NAME
                elif branch == 4:
                    value, pos = read_long(buf, pos)
                    if kind != _EXTENSION_NAME or not INT32[0] <= value <= INT32[1]:
                        suspect = True
                elif branch == 8:
                    size, pos = read_length(buf, pos)
                    value = buf[pos : pos + size]
                    pos += size
                    suspect = suspect or kind != _EXTENSION_NAME
                elif branch == 0:
                    value = None
                    suspect = True
                else:
                    raise ValueError(f"attribute union index {branch >> 1} out of range")
                attrs[name] = value
                if not kind:
                    suspect = True
            if buf[pos] == 0:  # the end of the map
                pos += 1
                break
            count, pos = read_count(buf, pos)
    data, pos = read_data(buf, pos)
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} bytes after the record")
    return attrs, data, suspect


def read_avro(buf: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) read directly; attributes as written (time still an RFC 3339 string),
    JSON-value data as plain JSON."""
    attrs, data, _ = _read(buf)
    return attrs, data


def _read_body(payload: bytes) -> tuple[dict[str, Any], Any, bool]:
    try:
        return _read(payload)
    except Exception as exc:  # IndexError, ValueError, UnicodeDecodeError, struct.error... on junk
        raise EventValidationError(
            "invalid CloudEvent Avro",
            [Problem("body", f"{len(payload)} bytes", f"not the CloudEvents Avro format: {exc}")],
        ) from exc


def read_avro_any(payload: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) of any CloudEvents Avro body (time as text); EventValidationError for anything else."""
    attrs, data, _ = _read_body(payload)
    return attrs, data


def read_avro_checked_any(payload: bytes) -> tuple[dict[str, Any], Any, bool]:
    """(attributes with time as a datetime, data, suspect) of any CloudEvents Avro body.

    `suspect` is False only when `validate_attributes` would find nothing, so a
    caller may skip it. EventValidationError for a body that is not the format
    or a time that is not RFC 3339 (the report every format gives).
    """
    attrs, data, suspect = _read_body(payload)
    time = attrs.get("time")
    if type(time) is str:
        try:
            parsed = datetime.fromisoformat(time)
        except ValueError:
            parse_time(attrs)  # raises the usual report
            raise
        attrs["time"] = parsed
        suspect = suspect or parsed.tzinfo is None
    if not suspect:
        get = attrs.get
        suspect = get("specversion") != SPECVERSION or not (
            "id" in attrs and "source" in attrs and "type" in attrs
        )
    return attrs, data, suspect


def avro_event(attrs: dict[str, Any], data: Any) -> CloudEvent:
    """A validated CloudEvent from read attributes (time as text) and data; takes over `attrs`."""
    parse_time(attrs)
    if type(data) is bytes:
        if "datacontenttype" in attrs and is_json_content_type(attrs["datacontenttype"]):
            data = parse_json_bytes(
                data
            )  # binary data labelled JSON but not JSON: hand over the bytes
    elif type(data) is dict or type(data) is list:
        data = from_record_value(data)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def from_avro_record(record: dict[str, Any]) -> CloudEvent:
    """A validated CloudEvent from a decoded record (read with return_record_name=True)."""
    return avro_event(dict(record["attribute"]), record["data"])


def from_avro(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro format; EventValidationError for anything else."""
    attrs, data, suspect = read_avro_checked_any(payload)
    if type(data) is bytes and "datacontenttype" in attrs:
        content_type = attrs["datacontenttype"]
        if (content_type is None or type(content_type) is str) and is_json_content_type(
            content_type
        ):
            data = parse_json_bytes(data)
    if suspect:
        validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)
