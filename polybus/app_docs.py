"""An AsyncAPI 3.0 document for one App: what it subscribes to and what it publishes.

Channels are the app's topics; each subscription is a ``receive``
operation carrying its filter (``x-polybus-filter``), delivery policy and
concurrency, and each declared publication (``app.publishes(topic, type)``)
a ``send`` operation. Messages come from the schema registry: a
subscription lists the registered types its filter can match (an exact type
or a set of them; every type of the topic otherwise), a publication its
declared types, with a bare CloudEvents message for types the registry lacks.
"""

from __future__ import annotations

from typing import Any

from polybus.app import App
from polybus.core.filters.dialects import AnyOf, Exact, Filter, parse_filter, to_json
from polybus.core.filters.native import normalize
from polybus.core.schemas.asyncapi import _key, asyncapi_document
from polybus.core.schemas.registry import SchemaRegistry


def app_asyncapi(app: App, registry: SchemaRegistry, *, version: str = "1.0.0") -> dict[str, Any]:
    """The AsyncAPI document of `app`, with the registry's schemas for its messages."""
    base = asyncapi_document(registry, title=f"{app.name} (polybus app)", version=version)
    messages: dict[str, Any] = base["components"]["messages"]
    by_type: dict[str, list[str]] = {}
    for key, message in messages.items():
        by_type.setdefault(message["name"], []).append(key)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def channel(topic: str, types: list[str]) -> str:
        key = _key(topic)
        entry = channels.setdefault(key, {"address": topic, "title": topic, "messages": {}})
        for event_type in types:
            for message_key in by_type.get(event_type) or [_bare(messages, event_type)]:
                entry["messages"][message_key] = {"$ref": f"#/components/messages/{message_key}"}
        return key

    for spec in app.subscribers:
        flt = None if spec.filter is None else parse_filter(spec.filter)
        types = _types_of(flt) or _topic_types(registry, spec.topic)
        key = channel(spec.topic, types)
        operations[_key(f"receive.{spec.name}")] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"subscription {spec.name} on {spec.topic}",
            "messages": _refs(key, channels[key], types, by_type),
            "x-polybus-subscription": spec.name,
            "x-polybus-filter": None if flt is None else to_json(flt),
            "x-polybus-policy": {
                "max_delivery_attempts": spec.policy.max_delivery_attempts,
                "ordered": spec.policy.ordered,
                "dead_letter": spec.policy.dead_letter_name(spec.name),
            },
            "x-polybus-concurrency": spec.concurrency,
        }
    for topic, published in app.publications.items():
        key = channel(topic, sorted(published))
        operations[_key(f"send.{topic}")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"{app.name} publishes to {topic}",
            "messages": _refs(key, channels[key], sorted(published), by_type),
        }
    base["info"]["description"] = (
        f"The subscriptions and publications of the polybus app {app.name!r}. "
        "Events are CloudEvents 1.0; filters are polybus portable filters."
    )
    base["channels"], base["operations"] = channels, operations
    return base


def _types_of(flt: Filter | None) -> list[str]:
    """The event types a filter can match when it names them exactly (else empty: any type)."""
    if flt is None:
        return []
    flat = normalize(flt)
    parts = flat.filters if isinstance(flat, AnyOf) else (flat,)
    if all(isinstance(p, Exact) and p.attribute == "type" for p in parts):
        return sorted(p.value for p in parts if isinstance(p, Exact))
    return []


def _topic_types(registry: SchemaRegistry, topic: str) -> list[str]:
    return [t for t in registry.event_types() if topic in (registry.info(t).topics or (topic,))]


def _bare(messages: dict[str, Any], event_type: str) -> str:
    key = _key(event_type)
    messages.setdefault(
        key,
        {
            "name": event_type,
            "title": event_type,
            "summary": f"{event_type} (no registered schema)",
        },
    )
    return key


def _refs(
    key: str, channel: dict[str, Any], types: list[str], by_type: dict[str, list[str]]
) -> list[dict[str, str]]:
    wanted = {k for t in types for k in by_type.get(t, [_key(t)])}
    return [{"$ref": f"#/channels/{key}/messages/{m}"} for m in channel["messages"] if m in wanted]
