"""An AsyncAPI 3.0 document for the registered event types and the topics they travel on.

Each event type version is a message (CloudEvents attributes as headers,
the data schema as payload: JSON Schema as is, Avro through AsyncAPI's
multi-format schema); each topic is a channel with the messages of the types
that name it in `type.json` (types naming none go to the default topic), and
one `send` and one `receive` operation per channel.
"""

from __future__ import annotations

import re
from typing import Any

from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.formats import STRUCTURED_CONTENT_TYPE
from polybus.core.schemas.model import Schema
from polybus.core.schemas.registry import SchemaRegistry

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
JSON_SCHEMA_FORMAT = "application/schema+json;version=draft-07"


def _key(text: str) -> str:
    """A component or channel key (AsyncAPI allows letters, digits, '.', '-', '_')."""
    return re.sub(r"[^\w.\-]", "_", text)


def _headers(schema: Schema) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["id", "source", "specversion", "type"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string", "format": "uri-reference"},
            "specversion": {"type": "string", "const": "1.0"},
            "type": {"type": "string", "const": schema.event_type},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string"},
            "datacontenttype": {"type": "string"},
            "dataschema": {"type": "string", "const": schema.uri},
        },
    }


def _payload(schema: Schema) -> dict[str, Any]:
    if schema.kind == "avro":
        return {"schemaFormat": AVRO_FORMAT, "schema": schema.definition}
    definition = {k: v for k, v in schema.definition.items() if k != "$schema"}
    return {"schemaFormat": JSON_SCHEMA_FORMAT, "schema": definition}


def asyncapi_document(
    registry: SchemaRegistry, *, title: str = "polybus events", version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain data (dump it as JSON or YAML)."""
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type in registry.event_types():
        info = registry.info(event_type)
        refs = {}
        for number in registry.versions(event_type):
            schema = registry.get(event_type, number)
            key = _key(f"{event_type}.v{number}")
            messages[key] = {
                "name": event_type,
                "title": f"{event_type} v{number}",
                "summary": info.description or f"{event_type}, schema version {number}",
                "contentType": "application/json"
                if schema.kind == "jsonschema"
                else "application/avro",
                "headers": _headers(schema),
                "payload": _payload(schema),
                "x-polybus-dataschema": schema.uri,
                "x-polybus-compatibility": info.compatibility,
            }
            refs[key] = {"$ref": f"#/components/messages/{key}"}
        for topic in info.topics or (DEFAULT_TOPIC,):
            channel = channels.setdefault(
                _key(topic),
                {"address": topic, "title": topic, "messages": {}},
            )
            channel["messages"].update(refs)
    for key, channel in channels.items():
        ref = {"$ref": f"#/channels/{key}"}
        message_refs = [{"$ref": f"#/channels/{key}/messages/{m}"} for m in channel["messages"]]
        operations[_key(f"publish.{key}")] = {
            "action": "send",
            "channel": ref,
            "summary": f"Publish CloudEvents to {channel['address']}",
            "messages": message_refs,
        }
        operations[_key(f"consume.{key}")] = {
            "action": "receive",
            "channel": ref,
            "summary": f"Subscribe to CloudEvents on {channel['address']}",
            "messages": message_refs,
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Event types and topics from the polybus schema registry. Events are CloudEvents 1.0; binary encodings (Avro, Protobuf) carry the data named by `dataschema`.",
        },
        "defaultContentType": STRUCTURED_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
