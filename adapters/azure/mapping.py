"""Pure conversions between polybus and Event Grid: events and resource names.

Events: a polybus event (cloudevents SDK) becomes an ``azure.core.messaging.CloudEvent``
for the publisher client and comes back from the consumer client the same
way; attributes, extensions and data (JSON or bytes, sent as ``data_base64``)
survive the round trip.

Names: Event Grid namespace topics and event subscriptions are 3-50 characters
of letters, digits and hyphens. A portable name that already fits is used as
is; any other name has its invalid characters replaced by ``-``, is cut to fit
and gets a short hash of the original, so distinct names stay distinct.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.core.messaging import CloudEvent as AzureCloudEvent
from cloudevents.core.v1.event import CloudEvent

from polybus.core.events import build_event, validate_attributes
from polybus.core.filters.dialects import canonical_string

_STANDARD = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema"}
)
_OPTIONAL = ("subject", "datacontenttype", "dataschema")
_VALID_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9-]")
MAX_NAME = 50


def to_azure(event: CloudEvent) -> AzureCloudEvent:
    """The SDK's CloudEvent for a polybus event (extensions as JSON-friendly values)."""
    attrs = event.get_attributes()
    extensions: dict[str, Any] | None = None
    for name, value in attrs.items():
        if name in _STANDARD or value is None:
            continue
        if extensions is None:
            extensions = {}
        kind = type(value)
        extensions[name] = (
            value if kind is str or kind is int or kind is bool else canonical_string(value)
        )
    return AzureCloudEvent(
        attrs["source"],
        attrs["type"],
        specversion=attrs.get("specversion"),
        id=attrs["id"],
        time=attrs.get("time"),
        datacontenttype=attrs.get("datacontenttype"),
        dataschema=attrs.get("dataschema"),
        subject=attrs.get("subject"),
        data=event.get_data(),
        extensions=extensions,
    )


def from_azure(event: AzureCloudEvent) -> CloudEvent:
    """A polybus event from the SDK's CloudEvent (the SDK's NULL becomes None)."""
    attrs: dict[str, Any] = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "specversion": getattr(event, "specversion", "1.0") or "1.0",
    }
    if isinstance(event.time, datetime):
        attrs["time"] = event.time
    for name in _OPTIONAL:
        value = getattr(event, name)
        if value:
            attrs[name] = value
    if event.extensions:
        attrs.update(event.extensions)
    data = event.data
    if data is not None and not data and type(data).__name__ == "_Null":
        data = None
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def from_wire_dict(obj: Mapping[str, Any]) -> CloudEvent:
    """A polybus event from a CloudEvents JSON object (push deliveries, dead-letter records)."""
    return from_azure(AzureCloudEvent.from_dict(dict(obj)))


def native_name(name: str) -> str:
    """The Event Grid resource name for a portable topic or subscription name."""
    if _VALID_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cleaned = _INVALID_CHARS.sub("-", name)[: MAX_NAME - len(digest) - 1]
    return f"{cleaned}-{digest}"
