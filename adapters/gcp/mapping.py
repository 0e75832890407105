"""CloudEvents <-> Pub/Sub messages, portable names <-> Pub/Sub resource paths, and event sizes.

**The CloudEvents Google Cloud Pub/Sub protocol binding**, both content modes
(cloudevents/spec pubsub-protocol-binding.md; google-cloudevents docs/spec/pubsub.md).

Binary mode (the default): the message data is the event data as is;
attribute ``content-type`` carries datacontenttype; every other attribute and
extension goes to ``ce-<name>`` in its canonical string form. Data follows
polybus's one data model (docs/data-model.md): with no datacontenttype the
data is JSON, as in the JSON event format, so it is parsed back to the same
value. Data whose type the message data and content type cannot tell apart
(bytes under a JSON or text type or none, a str under a binary type, empty
data) is written in structured mode instead, where it keeps its type. Structured mode:
``content-type: application/cloudevents+json; charset=UTF-8`` and the JSON
event format as data; the ``ce-*`` attributes are added too (the spec allows
it) so that subscription filters work in both modes.

Structured mode may also carry a binary event format (``event_format``:
Avro, Avro Compact or Protobuf, with ``application/cloudevents+avro`` and so
on as content-type); the ``ce-*`` attributes stay beside it for filters.

Reading: a ``content-type`` attribute starting with ``application/cloudevents``
means structured (JSON, Avro, Avro Compact or Protobuf), anything else
binary. Attribute names are case-insensitive: ``content-type``,
``Content-Type`` and ``ce-datacontenttype`` are all read. Binary mode needs
the attributes to fit Pub/Sub's limits (100 attributes, values up to 1,024
bytes); an event that does not fit is written in structured mode instead,
which receivers read the same way.

**Names**: the portable topic ``orders`` is ``projects/<project>/topics/orders``
and the subscription ``billing`` is ``projects/<project>/subscriptions/billing``
when the name is a valid Pub/Sub id (starts with a letter, 3-255 of
``[A-Za-z0-9-_.~+%]``, not ``goog...``). Other names are made valid
reversibly: characters outside that set are percent-encoded and a name that is
too short or starts wrongly gets the prefix ``pb-``.

**Sizes**: Pub/Sub counts a message as its data bytes plus the UTF-8 bytes of
every attribute key and value (`message_size`). The adapter measures each
message it encodes, in its configured content mode and event format;
`event_size` measures the default encoding (binary mode, which falls back to
structured JSON when the attributes do not fit), for offline checks.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from cloudevents.core.v1.event import CloudEvent

from polybus.core import codecs
from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.filters.dialects import canonical_string
from polybus.core.formats import dumps_json, from_json, is_json_content_type, to_json
from polybus.core.sizing import SizeLimit
from polybus.core.tracing.carriers import PUBSUB_TRACEPARENT, TRACEPARENT

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"
CONTENT_TYPE = "content-type"
PREFIX = "ce-"
MAX_ATTRIBUTES = 100
MAX_VALUE_BYTES = 1024
_TEXT_TYPE = re.compile(r"^text/", re.IGNORECASE)
_BINARY_FORMATS = frozenset(f.content_type for f in codecs.FORMATS.values() if f.name != "json")

Message = tuple[bytes, dict[str, str]]  # Pub/Sub message data and attributes

_VALID_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_SAFE = "-_.~+"


def encode_data(data: Any, datacontenttype: str | None) -> bytes:
    """The event data as message bytes: bytes as is, JSON types as JSON, other text as UTF-8."""
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if is_json_content_type(datacontenttype):
        return dumps_json(data).encode("utf-8")
    return (data if isinstance(data, str) else str(data)).encode("utf-8")


def decode_data(payload: bytes, datacontenttype: str | None) -> Any:
    """Message bytes back to event data: JSON parsed, text/* decoded, anything else bytes."""
    if not payload:
        return None
    if is_json_content_type(datacontenttype):  # absent means JSON, as in the JSON event format
        try:
            return json.loads(payload)
        except ValueError:
            return payload  # not JSON after all: hand over the bytes rather than fail
    if datacontenttype is not None and _TEXT_TYPE.match(datacontenttype):
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload
    return payload


_KEYS: dict[str, str] = {"datacontenttype": CONTENT_TYPE}  # attribute name -> message key


def _key(name: str) -> str:
    key = _KEYS.get(name)
    if key is None:
        key = _KEYS[name] = PREFIX + name
    return key


def binary_keeps(data: Any, datacontenttype: str | None) -> bool:
    """Whether `decode_data` reads this data back as the same value and type in binary mode."""
    if data is None:
        return True
    json_type = is_json_content_type(datacontenttype)
    text_type = not json_type and _TEXT_TYPE.match(datacontenttype or "") is not None
    if isinstance(data, bytes | bytearray):
        return bool(data) and not json_type and not text_type
    if isinstance(data, str):
        return json_type or (text_type and bool(data))
    return json_type


def binary_attributes(event: CloudEvent) -> dict[str, str]:
    """The ``ce-*`` attributes (and ``content-type`` for datacontenttype) of an event."""
    keys = _KEYS
    out: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        key = keys.get(name) or _key(name)
        out[key] = value if type(value) is str else canonical_string(value)
    return out


def fits_attribute_limits(attributes: Mapping[str, str]) -> bool:
    """Whether Pub/Sub accepts these attributes (count, and value size in bytes)."""
    if len(attributes) > MAX_ATTRIBUTES:
        return False
    for value in attributes.values():
        # A character is at most 4 bytes in UTF-8: only long values need encoding to measure.
        if len(value) * 4 > MAX_VALUE_BYTES and len(value.encode()) > MAX_VALUE_BYTES:
            return False
    return True


def to_message(event: CloudEvent, mode: str = "binary", event_format: str = "json") -> Message:
    """Encode an event as Pub/Sub message data and attributes in `mode` ('binary'/'structured').

    Structured mode writes `event_format` ('json', 'avro', 'avro-compact' or
    'protobuf', see core.codecs) with its content type.
    """
    attributes = binary_attributes(event)
    fits = fits_attribute_limits(attributes)
    if mode == "binary" and fits and binary_keeps(event.get_data(), event.get_datacontenttype()):
        return encode_data(event.get_data(), event.get_datacontenttype()), attributes
    structured: dict[str, str] = {}
    if fits:
        structured = {k: v for k, v in attributes.items() if k != CONTENT_TYPE}
        if event.get_datacontenttype() is not None:
            structured["ce-datacontenttype"] = attributes[CONTENT_TYPE]
    if event_format == "json":
        structured[CONTENT_TYPE] = STRUCTURED_CONTENT_TYPE
        return to_json(event), structured
    structured[CONTENT_TYPE], body = codecs.encode(event, event_format)
    return body, structured


def _lookup(attributes: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    """The content type and the ``ce-*`` attributes, names matched case-insensitively."""
    content_type = None
    ce: dict[str, str] = {}
    for key in attributes:  # keys then lookups: a protobuf map's items() is several times slower
        value = attributes[key]
        if key.startswith(PREFIX):
            name = key[3:]
            ce[name if name.islower() else name.lower()] = value
            continue
        lower = key.lower()
        if lower == CONTENT_TYPE:
            content_type = value
        elif lower.startswith(PREFIX):
            ce[lower[3:]] = value
    return content_type, ce


def is_structured(attributes: Mapping[str, str]) -> bool:
    """Structured mode when content-type starts with application/cloudevents."""
    content_type, _ = _lookup(attributes)
    return content_type is not None and content_type.lower().startswith("application/cloudevents")


def from_message(data: bytes, attributes: Mapping[str, str]) -> CloudEvent:
    """Decode a Pub/Sub message in either mode; EventValidationError when it is no CloudEvent."""
    content_type, ce = _lookup(attributes)
    lowered = (content_type or "").lower()
    if lowered.startswith("application/cloudevents"):
        if "json" in lowered:
            return from_json(data)
        known = lowered.split(";")[0].strip() in _BINARY_FORMATS
        if known:  # Avro, Avro Compact, Protobuf
            return codecs.decode(lowered, bytes(data))
        # A structured event format we cannot read: the spec lets us treat it as binary.
    attrs: dict[str, Any] = dict(ce)
    if TRACEPARENT not in attrs and PUBSUB_TRACEPARENT in attributes:
        # A publisher traced by google-cloud-pubsub, not by polybus: keep its context.
        attrs[TRACEPARENT] = attributes[PUBSUB_TRACEPARENT]
    datacontenttype = content_type if content_type is not None else ce.get("datacontenttype")
    if datacontenttype is not None:
        attrs["datacontenttype"] = datacontenttype
    time = attrs.get("time")
    if time is not None:
        try:
            attrs["time"] = datetime.fromisoformat(time)
        except ValueError as exc:
            raise EventValidationError(
                "invalid CloudEvent in Pub/Sub message",
                [Problem("ce-time", time, "must be an RFC 3339 timestamp")],
            ) from exc
    payload = decode_data(bytes(data), datacontenttype)
    validate_attributes(attrs, payload, check_data=False)
    return build_event(attrs, payload)


# -- names ------------------------------------------------------------------------


def resource_id(name: str) -> str:
    """A valid Pub/Sub topic/subscription id for a portable name (identity when already valid)."""
    if _VALID_ID.fullmatch(name) and not name.startswith("goog"):
        return name
    encoded = quote(name, safe=_SAFE)
    if not _VALID_ID.fullmatch(encoded) or encoded.startswith("goog"):
        encoded = "pb-" + encoded
    return encoded[:255]


@functools.lru_cache(maxsize=4096)
def topic_path(project: str, topic: str) -> str:
    """``projects/<project>/topics/<id>`` for a portable topic name."""
    return f"projects/{project}/topics/{resource_id(topic)}"


@functools.lru_cache(maxsize=4096)
def subscription_path(project: str, subscription: str) -> str:
    """``projects/<project>/subscriptions/<id>`` for a portable subscription name."""
    return f"projects/{project}/subscriptions/{resource_id(subscription)}"


# -- sizes ------------------------------------------------------------------------

# Pub/Sub's 10 MB are decimal: the client itself refuses a PublishRequest over
# 10 * 1000 * 1000 bytes (google/cloud/pubsub_v1/publisher/_batch/thread.py,
# _SERVER_PUBLISH_MAX_BYTES), and so does the emulator.
SIZE_LIMIT = SizeLimit(10 * 1000 * 1000, counted="data bytes + attribute keys and values")


def message_size(data: bytes, attributes: Mapping[str, str]) -> int:
    """Pub/Sub's size of a message: data bytes plus the UTF-8 bytes of attribute keys and values."""
    return len(data) + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())


def event_size(event: CloudEvent) -> int:
    """The size of `event` as the adapter sends it by default (binary mode, JSON fallback)."""
    return message_size(*to_message(event))
