"""The CloudEvents Protobuf event format (cloudevents/spec formats/protobuf-format.md, cloudevents.proto).

Content type ``application/cloudevents+protobuf`` (batches
``application/cloudevents-batch+protobuf``). The message classes are built at
runtime from a descriptor (no protoc, no generated ``*_pb2`` module) in a
private descriptor pool, so the spec's package name ``io.cloudevents.v1``
cannot clash with anything in the default pool.

Mapping: id, source, specversion and type in their own fields; time and
datetime extensions as ``ce_timestamp`` (normalised to UTC: a Timestamp keeps
no offset), dataschema as ``ce_uri``, other strings ``ce_string``, ints
``ce_integer``, bools ``ce_boolean``, bytes ``ce_bytes``. Data: bytes in
``binary_data``, text in ``text_data`` (JSON data as its JSON text, parsed
back when the datacontenttype says JSON), and Protobuf-encoded data
(datacontenttype application/protobuf) in ``proto_data`` as an Any.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.codecs.dataschema import parse_dataschema, protobuf_package
from polybus.core.codecs.protobuf_read import read_event_checked
from polybus.core.codecs.protobuf_wire import (
    BINARY,
    PROTO,
    TEXT,
    varint,
    write_protobuf,
)
from polybus.core.codecs.wire import read_varint
from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import dumps_json, is_json_content_type, loads_json

CONTENT_TYPE = "application/cloudevents+protobuf"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+protobuf"
PACKAGE = "io.cloudevents.v1"
_REQUIRED = {"id": "id", "source": "source", "specversion": "spec_version", "type": "type"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROTOBUF_DATA = "application/protobuf"

_classes: tuple[Any, Any] | None = None


def _build() -> tuple[Any, Any]:
    """(CloudEvent, CloudEventBatch) message classes from a runtime descriptor."""
    from google.protobuf import (
        any_pb2,
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        timestamp_pb2,
    )

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    for wkt in (any_pb2, timestamp_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        wkt.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="polybus/cloudevents.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/timestamp.proto"],
    )
    event = file.message_type.add(name="CloudEvent")
    for number, name in enumerate(("id", "source", "spec_version", "type"), start=1):
        event.field.add(name=name, number=number, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    event.field.add(
        name="attributes",
        number=5,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=f".{PACKAGE}.CloudEvent.AttributesEntry",
    )
    event.oneof_decl.add(name="data")
    for number, name, kind, type_name in (
        (6, "binary_data", F.TYPE_BYTES, ""),
        (7, "text_data", F.TYPE_STRING, ""),
        (8, "proto_data", F.TYPE_MESSAGE, ".google.protobuf.Any"),
    ):
        field = event.field.add(
            name=name, number=number, type=kind, label=F.LABEL_OPTIONAL, oneof_index=0
        )
        if type_name:
            field.type_name = type_name
    entry = event.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(
        name="value",
        number=2,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_OPTIONAL,
        type_name=f".{PACKAGE}.CloudEvent.CloudEventAttributeValue",
    )
    value = event.nested_type.add(name="CloudEventAttributeValue")
    value.oneof_decl.add(name="attr")
    for number, name, kind, type_name in (
        (1, "ce_boolean", F.TYPE_BOOL, ""),
        (2, "ce_integer", F.TYPE_INT32, ""),
        (3, "ce_string", F.TYPE_STRING, ""),
        (4, "ce_bytes", F.TYPE_BYTES, ""),
        (5, "ce_uri", F.TYPE_STRING, ""),
        (6, "ce_uri_ref", F.TYPE_STRING, ""),
        (7, "ce_timestamp", F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
    ):
        field = value.field.add(
            name=name, number=number, type=kind, label=F.LABEL_OPTIONAL, oneof_index=0
        )
        if type_name:
            field.type_name = type_name
    batch = file.message_type.add(name="CloudEventBatch")
    batch.field.add(
        name="events",
        number=1,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=f".{PACKAGE}.CloudEvent",
    )
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.CloudEvent")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.CloudEventBatch")),
    )


def message_classes() -> tuple[Any, Any]:
    """The (CloudEvent, CloudEventBatch) protobuf classes, built on first use."""
    global _classes
    if _classes is None:
        _classes = _build()
    return _classes


_TYPE_URLS: dict[str | None, str] = {}


def data_type_url(dataschema: str | None) -> str:
    """The Any type URL of Protobuf data whose schema a registry URN names (remembered)."""
    found = _TYPE_URLS.get(dataschema)
    if found is None:
        named = parse_dataschema(dataschema)
        if named is None:
            found = (
                "type.googleapis.com/google.protobuf.BytesValue"
                if dataschema is None
                else dataschema
            )
        else:
            found = f"type.googleapis.com/{protobuf_package(*named)}.Data"
        if len(_TYPE_URLS) >= 4096:
            _TYPE_URLS.clear()
        _TYPE_URLS[dataschema] = found
    return found


def to_message(event: CloudEvent) -> Any:
    """The event as a protobuf CloudEvent message."""
    return message_of(event.get_attributes(), event.get_data())


def message_of(attributes: dict[str, Any], data: Any) -> Any:
    """A protobuf CloudEvent message of these attributes and data, built by upb."""
    cls = message_classes()[0]
    msg = cls()
    attrs = msg.attributes
    for name, value in attributes.items():
        if value is None:
            continue
        field = _REQUIRED.get(name)
        if field is not None:
            setattr(msg, field, value)
            continue
        kind = type(value)
        if kind is str:
            if name == "dataschema":
                attrs[name].ce_uri = value
            else:
                attrs[name].ce_string = value
        elif kind is datetime:
            stamp = attrs[name].ce_timestamp
            delta = value - _EPOCH
            stamp.seconds = delta.days * 86400 + delta.seconds
            stamp.nanos = delta.microseconds * 1000
        elif kind is bool:
            attrs[name].ce_boolean = value
        elif kind is int:
            attrs[name].ce_integer = value
        elif kind is bytes:
            attrs[name].ce_bytes = value
        else:
            attrs[name].ce_string = str(value)
    if data is None:
        return msg
    content_type = attributes.get("datacontenttype")
    if isinstance(data, bytes | bytearray):
        if (
            content_type is not None
            and content_type.split(";")[0].strip() == "application/protobuf"
        ):
            msg.proto_data.type_url = data_type_url(attributes.get("dataschema"))
            msg.proto_data.value = bytes(data)
        else:
            msg.binary_data = bytes(data)
    elif is_json_content_type(content_type):
        msg.text_data = dumps_json(data)
    else:
        msg.text_data = data if isinstance(data, str) else str(data)
    return msg


def to_protobuf(event: CloudEvent) -> bytes:
    """The event in the CloudEvents Protobuf format (written directly, see polybus.core.codecs.protobuf_wire)."""
    attrs = event.get_attributes()
    data = event.get_data()
    if data is None:
        return write_protobuf(attrs)
    content_type = attrs.get("datacontenttype")
    if type(data) is bytes or isinstance(data, (bytes, bytearray)):  # a tuple: faster than a union
        if content_type is not None and content_type.split(";")[0].strip() == PROTOBUF_DATA:
            return write_protobuf(attrs, PROTO, bytes(data), data_type_url(attrs.get("dataschema")))
        return write_protobuf(attrs, BINARY, bytes(data))
    if content_type == "application/json" or is_json_content_type(content_type):
        text = dumps_json(data)
    else:
        text = data if isinstance(data, str) else str(data)
    return write_protobuf(attrs, TEXT, text.encode())


def from_message(msg: Any) -> CloudEvent:
    """A validated CloudEvent from a protobuf CloudEvent message."""
    attrs: dict[str, Any] = {
        "id": msg.id,
        "source": msg.source,
        "specversion": msg.spec_version,
        "type": msg.type,
    }
    source = msg.attributes
    for name in source:
        value = source[name]
        kind = value.WhichOneof("attr")
        if kind == "ce_timestamp":
            stamp = value.ce_timestamp
            attrs[name] = datetime.fromtimestamp(stamp.seconds, UTC).replace(
                microsecond=stamp.nanos // 1000
            )
        elif kind is not None:
            attrs[name] = getattr(value, kind)
    which = msg.WhichOneof("data")
    data: Any = None
    if which == "text_data":
        data = msg.text_data
        if is_json_content_type(attrs.get("datacontenttype")):
            with contextlib.suppress(
                ValueError
            ):  # text labelled JSON that is not: hand over the text
                data = json.loads(data)
    elif which == "binary_data":
        data = msg.binary_data
    elif which == "proto_data":
        data = msg.proto_data.value
    for name in ("id", "source", "specversion", "type"):
        if attrs[name] == "":
            del attrs[name]  # proto3 cannot tell empty from missing: report it as missing
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def protobuf_event(
    attrs: dict[str, Any], data_tag: int, data: bytes | str, suspect: bool = True
) -> CloudEvent:
    """A validated CloudEvent from what `read_event_checked` read (text as str or UTF-8); takes over `attrs`.

    `suspect=False` (the reader vouches for the attributes) skips validate_attributes.
    """
    value: Any = None
    if data_tag == TEXT:
        value = data.decode() if type(data) is bytes else data
        content_type = attrs.get("datacontenttype")
        if content_type == "application/json" or is_json_content_type(content_type):
            try:  # noqa: SIM105 - contextlib.suppress would cost a third of a microsecond here
                value = loads_json(value)
            except ValueError:  # text labelled JSON that is not: hand it over
                pass
    elif data_tag:
        value = data
    if suspect:
        validate_attributes(attrs, value, check_data=False)
    return build_event(attrs, value)


def message_fields(msg: Any) -> tuple[dict[str, Any], int, bytes, str]:
    """(attributes, data tag, data bytes, Any type URL) of a parsed upb CloudEvent message."""
    attrs: dict[str, Any] = {}
    for name, field in (("id", msg.id), ("source", msg.source), ("specversion", msg.spec_version)):
        if field:  # proto3 cannot tell empty from missing: report it as missing
            attrs[name] = field
    if msg.type:
        attrs["type"] = msg.type
    for name, value in msg.attributes.items():
        kind = value.WhichOneof("attr")
        if kind == "ce_timestamp":
            stamp = value.ce_timestamp
            attrs[name] = _EPOCH + timedelta(
                seconds=stamp.seconds, microseconds=stamp.nanos // 1000
            )
        elif kind is not None:
            attrs[name] = getattr(value, kind)
    which = msg.WhichOneof("data")
    if which == "binary_data":
        return attrs, BINARY, msg.binary_data, ""
    if which == "text_data":
        return attrs, TEXT, msg.text_data.encode(), ""
    if which == "proto_data":
        return attrs, PROTO, msg.proto_data.value, msg.proto_data.type_url
    return attrs, 0, b"", ""


def _invalid(payload: bytes, exc: Exception) -> EventValidationError:
    return EventValidationError(
        "invalid CloudEvent protobuf",
        [Problem("body", f"{len(payload)} bytes", f"not the CloudEvents Protobuf format: {exc}")],
    )


def _read_with_upb(payload: bytes) -> tuple[dict[str, Any], int, bytes, str]:
    """Parse with the protobuf runtime: the reference for whatever the direct reader leaves to it."""
    try:
        return message_fields(message_classes()[0].FromString(payload))
    except Exception as exc:  # google.protobuf.message.DecodeError (imported lazily), OverflowError
        raise _invalid(payload, exc) from exc


def read_event_any(payload: bytes) -> tuple[dict[str, Any], int, bytes | str, str, bool]:
    """`protobuf_read.read_event_checked`, upb for what it leaves; EventValidationError on junk.

    (attributes, data tag, data (text as a str), Any type URL, whether the
    attributes still need validate_attributes).
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:
        return read_event_checked(payload)
    except (ValueError, IndexError, OverflowError):  # junk, or bytes left to upb (Unusual)
        return (*_read_with_upb(payload), True)


def read_protobuf_checked(payload: bytes) -> tuple[dict[str, Any], int, bytes, str, bool]:
    """`read_protobuf_any`, plus whether the attributes need validate_attributes.

    The flag is False only when the reader saw every required attribute,
    specversion 1.0 and only map entries validation passes, so a caller may
    skip validate_attributes (as `from_protobuf` does).
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:  # read_event_any, inlined: a call less per event
        attrs, data_tag, data, type_url, suspect = read_event_checked(payload)
    except (ValueError, IndexError, OverflowError):  # junk, or bytes left to upb (Unusual)
        return (*_read_with_upb(payload), True)
    if isinstance(data, str):
        return attrs, data_tag, data.encode(), type_url, suspect
    return attrs, data_tag, data, type_url, suspect


def read_protobuf_any(payload: bytes) -> tuple[dict[str, Any], int, bytes, str]:
    """(attributes, data tag, data bytes, Any type URL); EventValidationError on junk.

    Read directly (polybus.core.codecs.protobuf_read), with upb for anything unusual.
    """
    attrs, data_tag, data, type_url, _ = read_event_any(payload)
    return attrs, data_tag, data.encode() if isinstance(data, str) else data, type_url


def from_protobuf(payload: bytes) -> CloudEvent:
    """Read the CloudEvents Protobuf format; EventValidationError for anything else."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:  # read_event_any, inlined: a call less per event
        attrs, data_tag, data, _, suspect = read_event_checked(payload)
    except (ValueError, IndexError, OverflowError):  # junk, or bytes left to upb (Unusual)
        attrs, data_tag, data, _ = _read_with_upb(payload)
        suspect = True
    return protobuf_event(attrs, data_tag, data, suspect)


def to_protobuf_batch(events: list[CloudEvent]) -> bytes:
    """A CloudEventBatch message (application/cloudevents-batch+protobuf)."""
    out = bytearray()
    for event in events:
        body = to_protobuf(event)
        out += b"\x0a"
        out += varint(len(body))
        out += body
    return bytes(out)


def from_protobuf_batch(payload: bytes) -> list[CloudEvent]:
    """Read a CloudEventBatch; each event is validated."""
    bodies: list[bytes] = []
    try:
        pos = 0
        while pos < len(payload):
            if payload[pos] != 0x0A:
                raise ValueError(f"unexpected field tag {payload[pos]} in a batch")
            size, pos = read_varint(payload, pos + 1)
            bodies.append(payload[pos : pos + size])
            pos += size
        if pos != len(payload):
            raise ValueError("event overruns the batch")
    except (ValueError, IndexError) as exc:
        raise EventValidationError(
            "invalid CloudEvents protobuf batch",
            [Problem("body", f"{len(payload)} bytes", str(exc))],
        ) from exc
    return [from_protobuf(body) for body in bodies]
