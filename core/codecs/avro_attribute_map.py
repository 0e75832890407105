"""The attribute map of the CloudEvents Avro format, written and read directly.

The writer puts the entries that repeat from event to event first: the head
(specversion, type, datacontenttype, dataschema), then source, id, subject and
time, then the extensions in the event's order. The head and the source are
written from the last event's bytes when their values match, and a time entry
from a %-template per second. The reader takes the same head and source from
the last event's values when the bytes match, knows the names of the entries
where the writer puts them from their key bytes, reads any other layout
(fastavro's, maps in blocks) entry by entry, and says whether the attributes
need `validate_attributes` (the schema already fixed most of their types).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from polybus.core.codecs.avro_data_union import read_data
from polybus.core.codecs.avro_wire import (
    HALF,
    ZZ,
    avro_string,
    long_bytes,
    read_count,
    read_length,
    read_long,
    read_text,
)
from polybus.core.codecs.wire import MEMO_LIMIT, remember
from polybus.core.events import INT32, is_extension_name

SPECVERSION = "1.0"


def time_text(value: datetime) -> str:
    """RFC 3339 text as the spec writes it (UTC as "Z")."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --- Avro strings and bounded memos of their bytes -----------------------------------------

_STRING, _INT, _BYTES = b"\x06", b"\x04", b"\x08"  # attribute union indexes (boolean: 2)
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
    return _key(name) + _STRING


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


def _second_template(value: datetime) -> bytes:
    """The time entry's template for the second of `value` (UTC, with microseconds), memoised."""
    delta = value - _EPOCH
    second = delta.days * 86400 + delta.seconds
    whole = value.isoformat()[:-13].encode()  # without ".ffffff+00:00"
    template = _TIME_KEY + long_bytes(len(whole) + 8) + whole.replace(b"%", b"%%") + b".%06dZ"
    remember(_SECOND_TEMPLATES, second, template)
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
    if isinstance(value, datetime):  # subclasses too (pandas' Timestamp): RFC 3339, not str()
        return key + _STRING + avro_string(time_text(value))
    return key + _STRING + avro_string(str(value))


def _extensions(attrs: Mapping[str, Any], names: set[str]) -> tuple[bytes, int]:
    """The extension entries in the event's order, and how many are not None."""
    entries = [_entry(name, attrs[name]) for name in attrs if name in names]
    return b"".join(entries), sum(1 for e in entries if e)


def write_record(
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
            micros = time.microsecond
            if micros and time.tzinfo is UTC:
                delta = time - _EPOCH
                template = _SECOND_TEMPLATES.get(delta.days * 86400 + delta.seconds)
                time_entry = (template or _second_template(time)) % micros
            else:
                time_entry = _TIME_KEY + avro_string(time_text(time))
            count += 1
        else:
            raise TypeError("time is not a datetime")
        standard = (
            8 - (get("datacontenttype") is None) - (get("dataschema") is None) - (subject is None)
        ) - (time is None)
        extensions = b""
        extra = len(attrs) - standard  # extensions, and standard names holding None
        if extra:
            # one extra name, not a standard one, last in the dict: the one extension
            final = next(reversed(attrs)) if extra == 1 and type(attrs) is dict else ""
            names: Any = (final,) if final and final not in _STANDARD else attrs.keys() - _STANDARD
            if len(names) == 1:
                (name,) = names
                value = attrs[name]
                if type(value) is str:
                    raw = value.encode()
                    key = _TEXT_KEYS.get(name) or _text_key(name)
                    extensions = key + ZZ[len(raw) + HALF] + raw
                else:
                    extensions = _entry(name, value)
                count += 1 if extensions else 0
            elif names:
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


# --- reading ---------------------------------------------------------------------------------


_STANDARD_NAME, _EXTENSION_NAME, _TIME_NAME = 1, 2, 3  # and 0: a name that is none of them
_KINDS = {**dict.fromkeys(_STANDARD, _STANDARD_NAME), "time": _TIME_NAME}
_NAME_KINDS: dict[str, int] = dict(_KINDS)  # name -> kind, memoised (replaced whole when full)


def _name_kind(name: str) -> int:
    global _NAME_KINDS
    kind = _KINDS.get(name) or (_EXTENSION_NAME if is_extension_name(name) else 0)
    if len(_NAME_KINDS) >= MEMO_LIMIT:
        _NAME_KINDS = dict(_KINDS)  # a new dict: a reader never sees the standard names missing
    _NAME_KINDS[name] = kind
    return kind


# The run of head entries the last event started with (its bytes, values and entry count),
# and the last source entry read right after it (bytes, value).
_read_head: tuple[bytes, dict[str, str], int] = (b"", {}, 0)
_read_source: tuple[bytes, str] = (b"", "")
_ID_AT, _SUBJECT_AT, _TIME_AT = len(_ID_KEY), len(_SUBJECT_KEY), len(_TIME_KEY)


def _learn_head(buf: bytes, pos: int, count: int, attrs: dict[str, Any]) -> tuple[int, int]:
    """Read the head entries at `pos` (non-empty text) and remember them: (position, count left)."""
    global _read_head
    start, values, taken = pos, {}, 0
    while taken < count:
        found = next(((n, key) for n, key in _HEAD_KEYS if buf.startswith(key, pos)), None)
        if found is None:
            break
        name, key = found
        value, end = read_text(buf, pos + len(key))
        if not value:
            break
        values[name] = value
        pos = end
        taken += 1
    if taken:
        _read_head = (buf[start:pos], values, taken)
        attrs.update(values)
    return pos, count - taken


_fromisoformat = datetime.fromisoformat


def _parse_time(text: str) -> tuple[Any, bool]:
    """(the datetime, whether it is suspect); the text itself, suspect, when it is not RFC 3339."""
    try:
        value = _fromisoformat(text)
    except ValueError:
        return text, True
    return value, value.tzinfo is None


def read_record(buf: bytes, times: bool) -> tuple[dict[str, Any], Any, bool]:
    """(attributes, data, whether the attributes need `validate_attributes`); `times` parses time.

    The schema fixes that standard attributes are text (any other branch is
    suspect); what it cannot rule out is an empty string, a null, a bad
    extension name, an int beyond 32 bits, a time without an offset or a
    missing required attribute: each of those sets the flag.
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
            attrs = values.copy()
            pos += len(head)
            count -= taken
        else:
            pos, count = _learn_head(buf, pos, count, attrs)
        # source, id, subject, time where the writer puts them: each name known from its key's
        # bytes, a non-empty value under 64 bytes read inline
        entry, value = _read_source
        if count and entry and buf.startswith(entry, pos):
            attrs["source"] = value
            pos += len(entry)
            count -= 1
        elif count and buf.startswith(_SOURCE_KEY, pos):
            start = pos
            value, pos = read_text(buf, pos + len(_SOURCE_KEY))
            _read_source = (buf[start:pos], value)
            attrs["source"] = value
            suspect = suspect or not value
            count -= 1
        if count and buf.startswith(_ID_KEY, pos):
            size = buf[pos + _ID_AT]
            if 0 < size < 128 and not size & 1:
                end = pos + _ID_AT + 1 + (size >> 1)
                attrs["id"] = buf[pos + _ID_AT + 1 : end].decode()
                pos = end
            else:
                attrs["id"], pos = read_text(buf, pos + _ID_AT)
                suspect = suspect or not size
            count -= 1
        if count and buf.startswith(_SUBJECT_KEY, pos):
            size = buf[pos + _SUBJECT_AT]
            if 0 < size < 128 and not size & 1:
                end = pos + _SUBJECT_AT + 1 + (size >> 1)
                attrs["subject"] = buf[pos + _SUBJECT_AT + 1 : end].decode()
                pos = end
            else:
                attrs["subject"], pos = read_text(buf, pos + _SUBJECT_AT)
                suspect = suspect or not size
            count -= 1
        if count and buf.startswith(_TIME_KEY, pos):
            size = buf[pos + _TIME_AT]
            if 0 < size < 128 and not size & 1:
                end = pos + _TIME_AT + 1 + (size >> 1)
                value = buf[pos + _TIME_AT + 1 : end].decode()
                pos = end
            else:
                value, pos = read_text(buf, pos + _TIME_AT)
            if times:
                try:
                    value = _fromisoformat(value)
                    suspect = suspect or value.tzinfo is None
                except ValueError:  # left as text: read_avro_checked_any reports it
                    suspect = True
            attrs["time"] = value
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
                    elif kind == _TIME_NAME and times:
                        value, odd = _parse_time(value)
                        suspect = suspect or odd
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
    if buf[pos] == 0:  # bytes: the data of every schema-encoded event
        size = buf[pos + 1]
        if size < 128 and not size & 1:  # under 64 bytes
            pos += 2
            size >>= 1
        elif size & 129 == 128 and buf[pos + 2] < 128:  # two bytes: under 8 KiB
            size = (size & 127 | buf[pos + 2] << 7) >> 1
            pos += 3
        else:
            size, pos = read_length(buf, pos + 1)
        data: Any = buf[pos : pos + size]
        pos += size
    else:
        data, pos = read_data(buf, pos)
    if pos != len(buf):
        raise ValueError(
            f"{len(buf) - pos} bytes after the record" if pos < len(buf) else "cut short"
        )
    if not suspect:
        suspect = attrs.get("specversion") != SPECVERSION or not (
            "id" in attrs and "source" in attrs and "type" in attrs
        )
    return attrs, data, suspect
