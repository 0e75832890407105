"""CloudEvents event formats by name and content type: JSON, Avro, Avro Compact and Protobuf.

`encode(event, "avro")` gives ``(content_type, body)`` for a structured-mode
message; `decode(content_type, body)` reads any of the three. Avro needs
`fastavro`, Protobuf needs `protobuf` (the ``polybus[schemas]`` extra); both
are imported on first use, so ``import polybus.core.codecs`` works without
them. Nothing here imports the schema registry (polybus.core.schemas): it
sits above the codecs, and schema-encoded data lives there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem
from polybus.core.formats import STRUCTURED_CONTENT_TYPE, from_json, to_json


@dataclass(frozen=True)
class EventFormat:
    """A structured event format: its name, content type and the two pure functions."""

    name: str
    content_type: str
    encode: Callable[[CloudEvent], bytes]
    decode: Callable[[bytes], CloudEvent]


def _avro_encode(event: CloudEvent) -> bytes:
    from polybus.core.codecs.avro_format import to_avro

    return to_avro(event)


def _avro_decode(body: bytes) -> CloudEvent:
    from polybus.core.codecs.avro_format import from_avro

    return from_avro(body)


def _avro_compact_encode(event: CloudEvent) -> bytes:
    from polybus.core.codecs.avro_compact import to_avro_compact

    return to_avro_compact(event)


def _avro_compact_decode(body: bytes) -> CloudEvent:
    from polybus.core.codecs.avro_compact import from_avro_compact

    return from_avro_compact(body)


def _protobuf_encode(event: CloudEvent) -> bytes:
    from polybus.core.codecs.protobuf_format import to_protobuf

    return to_protobuf(event)


def _protobuf_decode(body: bytes) -> CloudEvent:
    from polybus.core.codecs.protobuf_format import from_protobuf

    return from_protobuf(body)


FORMATS: dict[str, EventFormat] = {
    "json": EventFormat("json", STRUCTURED_CONTENT_TYPE, to_json, from_json),
    "avro": EventFormat("avro", "application/cloudevents+avro", _avro_encode, _avro_decode),
    "avro-compact": EventFormat(
        "avro-compact",
        "application/cloudevents+avro-compact",
        _avro_compact_encode,
        _avro_compact_decode,
    ),
    "protobuf": EventFormat(
        "protobuf", "application/cloudevents+protobuf", _protobuf_encode, _protobuf_decode
    ),
}


def event_format(name_or_content_type: str) -> EventFormat:
    """A format by name ('json', 'avro', 'avro-compact', 'protobuf') or by content type (parameters ignored)."""
    key = name_or_content_type.split(";")[0].strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    for fmt in FORMATS.values():
        if fmt.content_type == key:
            return fmt
    raise EventValidationError(
        "unknown event format",
        [
            Problem(
                "content-type",
                name_or_content_type,
                f"one of {', '.join(f.content_type for f in FORMATS.values())}",
            )
        ],
    )


def encode(event: CloudEvent, fmt: str = "json") -> tuple[str, bytes]:
    """(content type, body) of a structured-mode message in format `fmt`."""
    chosen = event_format(fmt)
    return chosen.content_type, chosen.encode(event)


def decode(content_type: str, body: bytes) -> CloudEvent:
    """Read a structured-mode body of any known format, chosen by its content type."""
    return event_format(content_type).decode(body)
