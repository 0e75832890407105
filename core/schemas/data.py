"""Schema-driven binary encodings of event *data*: Avro, and Protobuf derived from the Avro schema.

With a registered Avro schema, data travels as Avro binary (no field names on
the wire; `datacontenttype: application/avro`) or as a Protobuf message whose
descriptor is built at runtime from the same Avro record
(`application/protobuf`). `dataschema` names the schema version, so a reader
knows how to decode. JSON Schema types travel as JSON.

Protobuf classes live in a private descriptor pool under the package
``polybus.data.<type>.v<version>``, so nothing clashes with the default pool.
Supported Avro shapes for Protobuf: records, primitives, enums (as strings),
nullable unions ``["null", X]``, arrays and maps of those. Protobuf data is
written and read by the protobuf runtime (upb): a generated codec was no
faster end to end (BENCHMARKS.md, "Codec trade-offs").

This module sits in the schemas package because it takes a `Schema`; it uses
the codecs below it (polybus.core.codecs), never the other way round.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from polybus.core.codecs.dataschema import protobuf_package
from polybus.core.errors import Problem
from polybus.core.schemas.errors import SchemaDefinitionError
from polybus.core.schemas.model import Schema

AVRO = "application/avro"
PROTOBUF = "application/protobuf"
BINARY_TYPES = {
    AVRO: "avro",
    "avro/binary": "avro",
    PROTOBUF: "protobuf",
    "application/x-protobuf": "protobuf",
}
ENCODINGS = ("json", "avro", "protobuf")
CONTENT_TYPES = {"avro": AVRO, "protobuf": PROTOBUF}


def is_binary_content_type(content_type: str | None) -> bool:
    """True for the content types this module decodes."""
    return content_type is not None and content_type.split(";")[0].strip().lower() in BINARY_TYPES


def encode_data(schema: Schema, data: Any, encoding: str) -> bytes:
    """Data (a dict following an Avro schema) as `encoding` ('avro' or 'protobuf') bytes."""
    return _codec(schema, encoding)[0](data)


def decode_data(schema: Schema, payload: bytes, content_type: str | None) -> Any:
    """Bytes of a binary content type back to plain data (dicts, lists, scalars)."""
    encoding = BINARY_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if encoding is None:
        raise ValueError(f"not a binary data content type: {content_type}")
    return _codec(schema, encoding)[1](payload)


def data_codec(
    schema: Schema, encoding: str
) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """The (encode, decode) pair for a schema's data in `encoding` ('avro' or 'protobuf'), built once."""
    return _codec(schema, encoding)


_CODECS: dict[tuple[str, int, str, int], tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {}


def _codec(schema: Schema, encoding: str) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    key = (schema.event_type, schema.version, encoding, id(schema.definition))
    found = _CODECS.get(key)
    if found is None:
        if schema.kind != "avro":
            raise SchemaDefinitionError(
                "binary data needs an Avro schema",
                [
                    Problem(
                        schema.uri,
                        schema.kind,
                        f"{encoding} data encoding is derived from an Avro schema",
                    )
                ],
            )
        if encoding == "avro":
            found = _avro_codec(schema.definition)
        elif encoding == "protobuf":
            found = _protobuf_codec(schema)
        else:
            raise ValueError(f"unknown data encoding {encoding!r}; one of avro, protobuf")
        _CODECS[key] = found
    return found


def _avro_codec(definition: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """A generated codec for the schema (polybus.core.codecs.avro_data), fastavro's where it has none."""
    from polybus.core.codecs.avro_data import Unsupported, generate

    try:
        return generate(definition)  # errors come out as ValueError
    except Unsupported:
        return _fastavro_codec(definition)


def _fastavro_codec(definition: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    import fastavro

    parsed = fastavro.parse_schema(definition)
    write, read = fastavro.schemaless_writer, fastavro.schemaless_reader

    def encode(data: Any) -> bytes:
        out = io.BytesIO()
        write(out, parsed, data)
        return out.getvalue()

    def decode(payload: bytes) -> Any:
        return read(io.BytesIO(payload), parsed, None)

    return encode, decode


# --- Protobuf from an Avro record --------------------------------------------------------

_SCALARS = {  # Avro primitive -> FieldDescriptorProto.Type
    "boolean": 8,  # TYPE_BOOL
    "int": 17,  # TYPE_SINT32: zigzag, small negatives stay small
    "long": 18,  # TYPE_SINT64
    "float": 2,  # TYPE_FLOAT
    "double": 1,  # TYPE_DOUBLE
    "string": 9,  # TYPE_STRING
    "bytes": 12,  # TYPE_BYTES
}
_MESSAGE, _OPTIONAL, _REPEATED = 11, 1, 3
_POOL: Any = None


def _protobuf_codec(schema: Schema) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    global _POOL
    if _POOL is None:
        _POOL = descriptor_pool.DescriptorPool()
    package = protobuf_package(schema.event_type, schema.version)
    try:
        root = _POOL.FindMessageTypeByName(f"{package}.Data")
    except KeyError:
        file = descriptor_pb2.FileDescriptorProto(
            name=f"{package.replace('.', '/')}.proto", package=package, syntax="proto3"
        )
        _Builder(file, package).message(
            file.message_type.add(name="Data"), schema.definition, schema.uri
        )
        _POOL.Add(file)
        root = _POOL.FindMessageTypeByName(f"{package}.Data")
    cls = message_factory.GetMessageClass(root)

    def encode(data: Any) -> bytes:
        """The runtime's encoding (map entries in a fixed order)."""
        try:
            return cls(**data).SerializeToString(deterministic=True)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"data does not fit {schema.uri}: {exc}") from exc

    def decode(payload: bytes) -> Any:
        message = cls()
        try:
            message.ParseFromString(payload)
        except Exception as exc:  # google.protobuf.message.DecodeError, imported lazily
            raise ValueError(f"not Protobuf of {schema.uri}: {exc}") from exc
        return _to_plain(message)

    return encode, decode


class _Builder:
    def __init__(self, file: Any, package: str) -> None:
        self.file = file
        self.package = package

    def message(self, proto: Any, record: Any, where: str, prefix: str = "") -> None:
        if not isinstance(record, dict) or record.get("type") not in ("record", "error"):
            raise SchemaDefinitionError(
                "protobuf encoding needs an Avro record",
                [Problem(where, record, "must be a record")],
            )
        full = f"{prefix}.{proto.name}" if prefix else f".{self.package}.{proto.name}"
        for number, field in enumerate(record["fields"], start=1):
            self._field(
                proto, full, field["name"], field["type"], number, f"{where}.{field['name']}"
            )

    def _field(self, proto: Any, full: str, name: str, avro: Any, number: int, where: str) -> None:
        label, optional = _OPTIONAL, False
        if isinstance(avro, list):
            rest = [b for b in avro if b != "null"]
            if len(rest) != 1 or len(avro) != 2:
                raise SchemaDefinitionError(
                    "unsupported union for protobuf",
                    [Problem(where, avro, "only ['null', X] unions map to protobuf")],
                )
            avro, optional = rest[0], True
        if isinstance(avro, dict) and avro.get("type") == "array":
            avro, label = avro["items"], _REPEATED
            optional = False
        field = proto.field.add(name=name, number=number, label=label)
        if isinstance(avro, dict) and avro.get("type") == "map":
            entry = proto.nested_type.add(name=_camel(name) + "Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=_OPTIONAL, type=9)
            self._typed(
                entry,
                entry.field.add(name="value", number=2, label=_OPTIONAL),
                f"{full}.{entry.name}",
                avro["values"],
                where,
            )
            field.label, field.type, field.type_name = _REPEATED, _MESSAGE, f"{full}.{entry.name}"
            return
        self._typed(proto, field, full, avro, where)
        if optional:
            field.proto3_optional = True
            field.oneof_index = len(proto.oneof_decl)
            proto.oneof_decl.add(name=f"_{name}")

    def _typed(self, proto: Any, field: Any, full: str, avro: Any, where: str) -> None:
        kind = avro.get("type") if isinstance(avro, dict) else avro
        if isinstance(kind, str) and kind in _SCALARS:
            field.type = _SCALARS[kind]
        elif kind == "enum":
            field.type = _SCALARS["string"]
        elif kind in ("record", "error"):
            nested = proto.nested_type.add(name=_camel(avro["name"].rpartition(".")[2]))
            self.message(nested, avro, where, full)
            field.type, field.type_name = _MESSAGE, f"{full}.{nested.name}"
        else:
            raise SchemaDefinitionError(
                "unsupported Avro type for protobuf",
                [
                    Problem(
                        where, avro, "use primitives, records, enums, arrays, maps or ['null', X]"
                    )
                ],
            )


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", name) if part) or "T"


def _repeated(field: Any) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.29; `label` is gone in 7
    return bool(is_repeated) if is_repeated is not None else field.label == _REPEATED


_SCALAR, _MESSAGE_FIELD, _LIST, _MESSAGE_LIST, _MAP, _MESSAGE_MAP, _OPTIONAL_FIELD = range(7)
_PLANS: dict[Any, list[tuple[str, int, Any]]] = {}


def _plan(descriptor: Any) -> list[tuple[str, int, Any]]:
    """How to read each field of a message type: (name, mode, nested descriptor), built once."""
    found = _PLANS.get(descriptor)
    if found is not None:
        return found
    plan: list[tuple[str, int, Any]] = []
    _PLANS[descriptor] = plan
    for field in descriptor.fields:
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            value = nested.fields_by_name["value"].message_type
            plan.append((field.name, _MESSAGE_MAP if value else _MAP, value))
        elif _repeated(field):
            plan.append((field.name, _MESSAGE_LIST if nested else _LIST, nested))
        elif field.has_presence and nested is None:
            plan.append((field.name, _OPTIONAL_FIELD, None))
        else:
            plan.append((field.name, _MESSAGE_FIELD if nested else _SCALAR, nested))
    return plan


def _to_plain(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, mode, _nested in _plan(message.DESCRIPTOR):
        value = getattr(message, name)
        if mode == _SCALAR:
            out[name] = value
        elif mode == _MESSAGE_LIST:
            out[name] = [_to_plain(v) for v in value]
        elif mode == _OPTIONAL_FIELD:
            out[name] = value if message.HasField(name) else None
        elif mode == _MESSAGE_FIELD:
            out[name] = _to_plain(value) if message.HasField(name) else None
        elif mode == _LIST:
            out[name] = list(value)
        elif mode == _MAP:
            out[name] = dict(value)
        else:
            out[name] = {k: _to_plain(v) for k, v in value.items()}
    return out
