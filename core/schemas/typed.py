"""Structured binary formats whose JSON data travels encoded with the type's registered schema.

    codec = TypedFormat(registry, "avro")      # or "avro-compact", "protobuf"
    body = codec.encode(event)                 # application/cloudevents+avro
    event == codec.decode(body)                # attributes and data

On the wire the event is an ordinary CloudEvents Avro (or Protobuf) event
whose data is the schema's binary encoding: Avro binary in the ``bytes``
branch with ``datacontenttype: application/avro`` (Protobuf: the message built
from the same Avro schema in ``proto_data``, ``application/protobuf``; Avro
Compact: Avro binary as the record's ``data`` bytes) and
``dataschema`` naming the version. Any reader of the spec format gets the
attributes and the data bytes; `decode` also decodes the data with the named
schema and gives back JSON data (``datacontenttype: application/json``), so a
JSON event makes the round trip unchanged.

Events without registered Avro schemas, or whose data is already bytes or
not JSON, go through the plain format. Encoding and the envelope are done in
one pass, with no intermediate CloudEvent. It lives with the registry it
reads; the codecs it writes with (polybus.core.codecs) never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.codecs import event_format
from polybus.core.codecs.avro_compact import event_data, read_compact_any, write_compact
from polybus.core.codecs.avro_format import read_avro_checked_any, write_avro
from polybus.core.codecs.protobuf_format import data_type_url, read_protobuf_checked
from polybus.core.codecs.protobuf_wire import BINARY, PROTO, TEXT, write_protobuf
from polybus.core.errors import Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import is_json_content_type
from polybus.core.schemas.data import BINARY_TYPES, CONTENT_TYPES, data_codec
from polybus.core.schemas.errors import SchemaValidationError
from polybus.core.schemas.model import Schema, parse_dataschema
from polybus.core.schemas.registry import SchemaRegistry

JSON = "application/json"
_DATA_ENCODINGS = {"avro": "avro", "avro-compact": "avro", "protobuf": "protobuf"}


Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]


class TypedFormat:
    """The Avro or Protobuf event format with schema-encoded data (see the module docstring).

    A registered version never changes, so the data codec of each ``dataschema``
    URI met is memoised: after the first event of a version, encoding and
    decoding go straight to that version's codec.
    """

    def __init__(self, registry: SchemaRegistry, fmt: str = "avro") -> None:
        self.format = event_format(fmt)
        if self.format.name not in _DATA_ENCODINGS:
            raise ValueError(
                f"typed data needs a binary format (avro, avro-compact or protobuf), not {fmt!r}"
            )
        self.registry = registry
        self.content_type = self.format.content_type
        self.encoding = _DATA_ENCODINGS[self.format.name]
        self._name = self.format.name
        self.data_content_type = CONTENT_TYPES[self.encoding]
        # dataschema -> (schema, its URI, encode); the URI is a property, computed once here
        self._encoders: dict[str, tuple[Schema, str, Encoder]] = {}
        self._decoders: dict[str, tuple[Schema, Decoder]] = {}  # dataschema -> (schema, decode)

    def encode(self, event: CloudEvent) -> bytes:
        """The event's bytes; JSON data encoded with its registered schema when there is one."""
        data = event.get_data()
        attrs = event.get_attributes()
        if data is None or isinstance(data, (bytes, bytearray)):  # a tuple: faster than a union
            return self.format.encode(event)
        if not is_json_content_type(attrs.get("datacontenttype")):
            return self.format.encode(event)
        dataschema = attrs.get("dataschema")
        found = self._encoders.get(dataschema) if dataschema is not None else None
        if found is None:
            schema = self.registry.for_event(event)
            if schema is None or schema.kind != "avro":
                return self.format.encode(event)
            found = (schema, schema.uri, data_codec(schema, self.encoding)[0])
            if dataschema is not None:
                self._encoders[dataschema] = found
        schema, uri, encode_data = found
        try:
            payload = encode_data(data)
        except (ValueError, TypeError) as exc:
            raise SchemaValidationError(
                f"event {event.get_id()} cannot be encoded with {schema.uri}",
                [Problem("data", type(data).__name__, str(exc))],
            ) from exc
        if self._name == "avro-compact":
            return write_compact(attrs, payload, self.data_content_type, uri)
        if self._name == "avro":
            return write_avro(attrs, payload, self.data_content_type, uri)
        return write_protobuf(
            attrs, PROTO, payload, data_type_url(uri), self.data_content_type, uri
        )

    def decode(self, body: bytes) -> CloudEvent:
        """A validated event; schema-encoded data decoded back to JSON data."""
        data: Any
        suspect = True  # whether the attributes need validate_attributes
        if self._name == "avro-compact":
            attrs, data, suspect = read_compact_any(body)
        elif self._name == "avro":
            attrs, data, suspect = read_avro_checked_any(body)
        else:
            attrs, tag, raw, _, suspect = read_protobuf_checked(body)
            data = raw if tag in (BINARY, PROTO) else raw.decode() if tag == TEXT else None
        content_type = attrs.get("datacontenttype")
        if type(data) is bytes and content_type is not None:
            decoder = (
                self._decoders.get(attrs.get("dataschema"))  # type: ignore[arg-type]
                if content_type == self.data_content_type
                else None
            ) or self._decoder(content_type, attrs.get("dataschema"))
            if decoder is not None:
                schema, decode_data = decoder
                try:
                    data = decode_data(data)
                except ValueError as exc:
                    raise SchemaValidationError(
                        f"event {attrs.get('id')} data does not decode with {schema.uri}",
                        [Problem("data", f"{len(data)} bytes", str(exc))],
                    ) from exc
                attrs["datacontenttype"] = JSON
                if suspect:
                    validate_attributes(attrs, data, check_data=False)
                return build_event(attrs, data)
        if self._name == "avro-compact":
            data = event_data(content_type, data)
            if suspect:
                validate_attributes(attrs, data, check_data=False)
            return build_event(attrs, data)
        return self.format.decode(body)

    def _decoder(self, content_type: str, dataschema: str | None) -> tuple[Schema, Decoder] | None:
        """(schema, decode) for schema-encoded data of this content type, or None."""
        if dataschema is None:
            return None
        if content_type == self.data_content_type:
            found = self._decoders.get(dataschema)
            if found is not None:
                return found
        encoding = BINARY_TYPES.get(content_type.split(";")[0].strip().lower())
        if encoding is None:
            return None
        key = dataschema if encoding == self.encoding else f"{encoding} {dataschema}"
        found = self._decoders.get(key)
        if found is None:
            named = parse_dataschema(dataschema)
            if named is None:
                return None
            schema = self.registry.get(*named)
            found = self._decoders[key] = (
                schema,
                data_codec(schema, encoding)[1],
            )
        return found
