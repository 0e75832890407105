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

Written and read directly against the fixed schema, without generic schema
interpretation: the attribute map by `avro_attribute_map` (repeating entries
from memoised bytes; validation only for an event the read finds suspect),
the data union by `avro_data_union`. fastavro is needed only by callers of
the record API (`to_avro_record`, `from_avro_record`); tests check the bytes
both ways against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.codecs.avro_attribute_map import read_record, time_text, write_record
from polybus.core.codecs.avro_data_union import (
    data_parts,
    event_data_parts,
    from_record_value,
    parse_json_bytes,
    record_data,
)
from polybus.core.codecs.avro_wire import HALF, ZZ
from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import is_json_content_type, parse_time

CONTENT_TYPE = "application/cloudevents+avro"

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


def _attribute_map(event: CloudEvent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        if value is None:
            continue
        out[name] = time_text(value) if type(value) is datetime else value
    return out


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
    if type(data) is bytes and len(data) < HALF:  # the map's end, data branch 0 (bytes), length
        return write_record(attrs, content_type, schema, b"\x00\x00" + ZZ[len(data) + HALF], data)
    tail, payload = data_parts(data)
    return write_record(attrs, content_type, schema, tail, payload)


def to_avro(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Avro format (schemaless Avro binary of cloudevents.avsc)."""
    attrs = event.get_attributes()
    content_type = attrs.get("datacontenttype")
    tail, payload = event_data_parts(event.get_data(), content_type)
    return write_record(attrs, content_type, attrs.get("dataschema"), tail, payload)


def to_avro_record(event: CloudEvent) -> dict[str, Any]:
    """The event as a record of the spec's schema (for writers that batch or frame records)."""
    data, content_type = event.get_data(), event.get_attributes().get("datacontenttype")
    return {"attribute": _attribute_map(event), "data": record_data(data, content_type)}


def read_avro(buf: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) read directly; attributes as written (time still an RFC 3339 string),
    JSON-value data as plain JSON."""
    attrs, data, _ = read_record(buf, False)
    return attrs, data


def _body_error(payload: bytes, exc: Exception) -> EventValidationError:
    return EventValidationError(
        "invalid CloudEvent Avro",
        [Problem("body", f"{len(payload)} bytes", f"not the CloudEvents Avro format: {exc}")],
    )


def read_avro_any(payload: bytes) -> tuple[dict[str, Any], Any]:
    """(attributes, data) of any CloudEvents Avro body (time as text); EventValidationError for anything else."""
    try:
        attrs, data, _ = read_record(payload, False)
    except Exception as exc:  # IndexError, ValueError, UnicodeDecodeError, struct.error... on junk
        raise _body_error(payload, exc) from exc
    return attrs, data


def read_avro_checked_any(payload: bytes) -> tuple[dict[str, Any], Any, bool]:
    """(attributes with time as a datetime, data, suspect) of any CloudEvents Avro body.

    `suspect` is False only when `validate_attributes` would find nothing, so a
    caller may skip it. EventValidationError for a body that is not the format
    or a time that is not RFC 3339 (the report every format gives).
    """
    try:
        attrs, data, suspect = read_record(payload, True)
    except Exception as exc:  # IndexError, ValueError, UnicodeDecodeError, struct.error... on junk
        raise _body_error(payload, exc) from exc
    if suspect:
        parse_time(attrs)  # a time left as text is not RFC 3339: raises the usual report
    return attrs, data, suspect


def _event_data(attrs: dict[str, Any], data: Any) -> Any:
    """Data as the event holds it: bytes labelled JSON parsed (kept as bytes when not JSON)."""
    if type(data) is bytes and "datacontenttype" in attrs:
        content_type = attrs["datacontenttype"]
        if (content_type is None or type(content_type) is str) and is_json_content_type(
            content_type
        ):
            return parse_json_bytes(data)
    return data


def avro_event(attrs: dict[str, Any], data: Any) -> CloudEvent:
    """A validated CloudEvent from read attributes (time as text) and data; takes over `attrs`."""
    parse_time(attrs)
    if type(data) is dict or type(data) is list:
        data = from_record_value(data)
    data = _event_data(attrs, data)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def from_avro_record(record: dict[str, Any]) -> CloudEvent:
    """A validated CloudEvent from a decoded record (read with return_record_name=True)."""
    return avro_event(dict(record["attribute"]), record["data"])


def from_avro(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Avro format; EventValidationError for anything else."""
    attrs, data, suspect = read_avro_checked_any(payload)
    data = _event_data(attrs, data)
    if suspect:
        validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)
