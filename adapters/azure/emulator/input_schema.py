"""Custom input schemas: map any JSON event onto Event Grid's fields, as a topic's inputSchemaMapping says.

The ARM shape a topic (or domain) is created with::

    {"inputSchema": "CustomEventSchema",
     "inputSchemaMapping": {"inputSchemaMappingType": "Json", "properties": {
         "id": {"sourceField": "orderId"}, "eventTime": {"sourceField": "at"},
         "eventType": {"sourceField": "kind", "defaultValue": "order"},
         "subject": {"defaultValue": "/orders"}, "dataVersion": {"defaultValue": "1.0"}}}}

`id`, `topic` and `eventTime` take only a `sourceField`; `eventType`, `subject`
and `dataVersion` take a `sourceField`, a `defaultValue` or both (the default
fills in when the field is missing). Every event is mapped to an Event Grid
event whose `data` is the event as published; filters see the mapped event.
A subscription picks how it receives: `CustomInputSchema` (as published, the
default), `EventGridSchema` (mapped) or `CloudEventSchemaV1_0` (converted).
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polybus.adapters.azure.emulator.namespace import BrokerError, utc_iso

CUSTOM_SCHEMA = "CustomEventSchema"
CUSTOM_DELIVERY = "CustomInputSchema"
_SOURCE_ONLY = ("id", "topic", "eventTime")
_WITH_DEFAULT = ("eventType", "subject", "dataVersion")


@dataclass(frozen=True)
class FieldMapping:
    """Where one Event Grid field comes from: a field of the event, else a default."""

    source: str | None = None
    default: str | None = None


@dataclass(frozen=True)
class InputMapping:
    """A topic's inputSchemaMapping, validated."""

    fields: Mapping[str, FieldMapping]

    def to_json(self) -> dict[str, Any]:
        """The ARM shape, for the admin API's GET."""
        properties: dict[str, Any] = {}
        for name, field in self.fields.items():
            spec: dict[str, str] = {}
            if field.source is not None:
                spec["sourceField"] = field.source
            if field.default is not None:
                spec["defaultValue"] = field.default
            properties[name] = spec
        return {"inputSchemaMappingType": "Json", "properties": properties}


def _bad(field: str, value: Any, rule: str) -> BrokerError:
    return BrokerError(400, "BadRequest", f"inputSchemaMapping {field} = {value!r}: {rule}")


def _unknown(field: str, name: str, known: tuple[str, ...]) -> BrokerError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _bad(field, name, f"unknown key; expected one of {', '.join(known)}{hint}")


def parse_mapping(spec: Any) -> InputMapping:
    """Validate the ARM inputSchemaMapping; a 400 naming the field, value and rule otherwise."""
    if not isinstance(spec, Mapping):
        raise _bad("", spec, "must be an object with inputSchemaMappingType and properties")
    for key in spec:
        if key not in ("inputSchemaMappingType", "properties"):
            raise _unknown("", key, ("inputSchemaMappingType", "properties"))
    if spec.get("inputSchemaMappingType") != "Json":
        raise _bad("inputSchemaMappingType", spec.get("inputSchemaMappingType"), "must be 'Json'")
    properties = spec.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise _bad("properties", properties, "must be an object")
    fields: dict[str, FieldMapping] = {}
    known = _SOURCE_ONLY + _WITH_DEFAULT
    for name, value in properties.items():
        if name not in known:
            raise _unknown("properties", name, known)
        allowed = ("sourceField",) if name in _SOURCE_ONLY else ("sourceField", "defaultValue")
        if not isinstance(value, Mapping) or not value:
            raise _bad(f"properties.{name}", value, f"must be an object with {' or '.join(allowed)}")
        for key, text in value.items():
            if key not in allowed:
                raise _unknown(f"properties.{name}", key, allowed)
            if not isinstance(text, str) or not text:
                raise _bad(f"properties.{name}.{key}", text, "must be a non-empty string")
        fields[name] = FieldMapping(value.get("sourceField"), value.get("defaultValue"))
    return InputMapping(fields)


def map_event(mapping: InputMapping, event: Any, topic_path: str) -> dict[str, Any]:
    """The Event Grid event for one published custom event (its `data` is the event itself)."""
    if not isinstance(event, Mapping):
        raise BrokerError(400, "BadRequest", "each event must be a JSON object")

    def value(name: str, fallback: str | None) -> str | None:
        field = mapping.fields.get(name)
        if field is None:
            return fallback
        found = event.get(field.source) if field.source else None
        if found is None:
            found = field.default
        if found is None:
            raise BrokerError(
                400,
                "BadRequest",
                f"event field {field.source!r} (mapped to {name}) is missing and has no default",
            )
        return str(found)

    return {
        "id": value("id", None) or str(uuid.uuid4()),
        "topic": value("topic", None) or topic_path,
        "subject": value("subject", "") or "",
        "eventType": value("eventType", None) or "",
        "eventTime": value("eventTime", None) or utc_iso(),
        "dataVersion": value("dataVersion", "") or "",
        "metadataVersion": "1",
        "data": dict(event),
    }


def to_cloudevent(event: Mapping[str, Any]) -> dict[str, Any]:
    """Event Grid's conversion of a (mapped) Event Grid event to a CloudEvent 1.0."""
    converted = {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event.get("data"),
    }
    if event.get("subject"):
        converted["subject"] = event["subject"]
    if event.get("dataVersion"):
        converted["dataschema"] = event["dataVersion"]
    return converted
