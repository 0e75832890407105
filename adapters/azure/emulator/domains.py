"""Event domains with domain topics, and partner namespaces with channels, over the basic topics.

A domain is one publish endpoint (``POST /{domain}/api/events``) for many
domain topics. Each event names its domain topic: the ``topic`` field in the
Event Grid schema, ``source`` in the CloudEvents schema, the mapped ``topic``
in a custom input schema. A domain topic is a basic topic named
``{domain}/{topic}`` (created on its first subscription, as Azure's
``autoCreateTopicWithFirstSubscription`` does, or explicitly); a domain-scope
subscription (``{domain}/*``) receives the events of every domain topic.
Events for a domain topic without subscriptions are dropped.

A partner namespace is a publish endpoint whose requests carry the
``aeg-channel-name`` header (the SDK's ``send(..., channel_name=...)``); each
channel routes to its partner topic, a CloudEvents basic topic that takes
ordinary event subscriptions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from polybus.adapters.azure.emulator.input_schema import CUSTOM_SCHEMA, map_event, parse_mapping
from polybus.adapters.azure.emulator.namespace import BrokerError
from polybus.adapters.azure.emulator.push import CLOUDEVENTS_SCHEMA, EVENTGRID_SCHEMA, BasicTopics

DOMAIN_SCOPE = "*"
_NAME = re.compile(r"[A-Za-z0-9-]{3,50}")


def check_name(kind: str, name: str) -> None:
    """Azure's rule for topic, domain and namespace names (3-50 letters, digits, '-')."""
    if not _NAME.fullmatch(name):
        raise BrokerError(
            400,
            "BadRequest",
            f"{kind} name {name!r} must be between 3 and 50 characters in length and use "
            "only letters, digits and '-'",
        )


class Domains:
    """Domains and partner namespaces; their topics live in `basic`."""

    def __init__(self, basic: BasicTopics) -> None:
        self.basic = basic
        self.schemas: dict[str, str] = {}  # domain -> input schema
        self.mapping_specs: dict[str, Any] = {}  # domain -> ARM inputSchemaMapping
        self.channels: dict[str, dict[str, str]] = {}  # partner namespace -> channel -> topic

    # -- domains --------------------------------------------------------------
    def create_domain(self, domain: str, schema: str, mapping: Any = None) -> None:
        """Create a domain (idempotent; its schema cannot change)."""
        check_name("domain", domain)
        if domain in self.basic.schemas or domain in self.channels:
            raise BrokerError(409, "Conflict", f"{domain!r} is already a topic or namespace")
        # validate the schema and mapping as a topic would, on the domain-scope topic
        self.basic.create_topic(self.topic_key(domain, DOMAIN_SCOPE), schema, mapping)
        self.schemas.setdefault(domain, schema)
        if mapping is not None:
            self.mapping_specs.setdefault(domain, mapping)

    def delete_domain(self, domain: str) -> None:
        """Delete a domain with its domain topics and their subscriptions."""
        for key in [k for k in self.basic.schemas if k.startswith(f"{domain}/")]:
            self.basic.delete_topic(key)
        self.schemas.pop(domain, None)
        self.mapping_specs.pop(domain, None)

    def domain_topic(self, domain: str, topic: str) -> str:
        """The basic-topic key of a domain topic, creating the domain topic if needed."""
        schema = self.schema(domain)
        if topic != DOMAIN_SCOPE:
            check_name("domain topic", topic)
        key = self.topic_key(domain, topic)
        self.basic.create_topic(key, schema, self.mapping_specs.get(domain))
        return key

    def topics(self, domain: str) -> list[str]:
        """The domain's topics (not the domain scope)."""
        self.schema(domain)
        prefix = f"{domain}/"
        return sorted(
            k[len(prefix) :]
            for k in self.basic.schemas
            if k.startswith(prefix) and k != self.topic_key(domain, DOMAIN_SCOPE)
        )

    def schema(self, domain: str) -> str:
        """The domain's input schema; 404 when there is no such domain."""
        schema = self.schemas.get(domain)
        if schema is None:
            raise BrokerError(404, "NotFound", f"domain {domain!r} does not exist")
        return schema

    @staticmethod
    def topic_key(domain: str, topic: str) -> str:
        """The basic-topic key of a domain topic (or of the domain scope)."""
        return f"{domain}/{topic}"

    def publish(self, domain: str, events: list[Any]) -> None:
        """Route each event to its domain topic and to the domain-scope subscriptions."""
        schema = self.schema(domain)
        groups: dict[str, tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]] = {}
        mapping = self.basic.mappings.get(self.topic_key(domain, DOMAIN_SCOPE))
        for event in events:
            if not isinstance(event, Mapping):
                raise BrokerError(400, "BadRequest", "each event must be a JSON object")
            original = event
            if schema == CUSTOM_SCHEMA and mapping is not None:
                event = map_event(mapping, event, "")
                name = event["topic"]
            elif schema == EVENTGRID_SCHEMA:
                name = event.get("topic")
            else:
                name = event.get("source")
            if not isinstance(name, str) or not name:
                field = "source" if schema == CLOUDEVENTS_SCHEMA else "topic"
                raise BrokerError(
                    400, "BadRequest", f"a domain event must name its domain topic in {field!r}"
                )
            check_name("domain topic", name)
            mapped, originals = groups.setdefault(name, ([], []))
            mapped.append(event)
            originals.append(original)
        for name, (mapped, originals) in groups.items():
            custom = schema == CUSTOM_SCHEMA
            for key in (self.topic_key(domain, name), self.topic_key(domain, DOMAIN_SCOPE)):
                if key in self.basic.schemas:
                    self.basic.publish(key, mapped, originals if custom else None)

    # -- partner namespaces -------------------------------------------------------
    def create_partner_namespace(self, namespace: str) -> None:
        """Create a partner namespace (idempotent)."""
        check_name("partner namespace", namespace)
        if namespace in self.basic.schemas or namespace in self.schemas:
            raise BrokerError(409, "Conflict", f"{namespace!r} is already a topic or domain")
        self.channels.setdefault(namespace, {})

    def put_channel(self, namespace: str, channel: str, partner_topic: str) -> None:
        """Create a channel routing to `partner_topic` (a CloudEvents basic topic)."""
        check_name("channel", channel)
        check_name("partner topic", partner_topic)
        self.partner_namespace(namespace)[channel] = partner_topic
        self.basic.create_topic(partner_topic, CLOUDEVENTS_SCHEMA)

    def partner_namespace(self, namespace: str) -> dict[str, str]:
        """The namespace's channels; 404 when there is no such namespace."""
        channels = self.channels.get(namespace)
        if channels is None:
            raise BrokerError(404, "NotFound", f"partner namespace {namespace!r} does not exist")
        return channels

    def channel_topic(self, namespace: str, channel: str | None) -> str:
        """The partner topic a publish with `aeg-channel-name: channel` goes to."""
        channels = self.partner_namespace(namespace)
        if not channel:
            raise BrokerError(
                400, "BadRequest", "publishing to a partner namespace needs the aeg-channel-name header"
            )
        topic = channels.get(channel)
        if topic is None:
            raise BrokerError(404, "NotFound", f"channel {channel!r} does not exist in {namespace!r}")
        return topic


def parse_topic_body(config: Mapping[str, Any]) -> tuple[str, Any]:
    """The inputSchema and inputSchemaMapping of an admin PUT body (validated by the topic)."""
    unknown = [k for k in config if k not in ("inputSchema", "inputSchemaMapping")]
    if unknown:
        raise BrokerError(
            400, "BadRequest", f"unknown key {unknown[0]!r}: expected inputSchema, inputSchemaMapping"
        )
    schema = config.get("inputSchema", CLOUDEVENTS_SCHEMA)
    mapping = config.get("inputSchemaMapping")
    if mapping is not None and schema != CUSTOM_SCHEMA:
        parse_mapping(mapping)  # still report a malformed mapping by its field
    return schema, mapping
