"""Pure conversions between polybus and Event Grid: events, sizes, resource names, redelivery stamps.

Events: a polybus event is sent as the CloudEvents JSON format (extensions at
top level, binary data as ``data_base64``), encoded once by `encode`; those
bytes are what `event_size` measures and what the adapter posts, so the size
checked is the size sent. Received events come back from the consumer client
as ``azure.core.messaging.CloudEvent`` (`from_azure`) or, pushed to the
webhook, as JSON objects (`from_wire_dict`).

Names: Event Grid namespace topics and event subscriptions are 3-50 characters
of letters, digits and hyphens. A portable name that already fits is used as
is; any other name has its invalid characters replaced by ``-``, is cut to fit
and gets a short hash of the original, so distinct names stay distinct.

Redelivery stamps (portable attempts above Event Grid's native 10, see
adapter.py): a copy republished to a subscription's private redelivery topic
carries ``polybusattempt`` (the portable attempts already made) and, after a
nack with a delay, ``polybusnotbefore`` (epoch milliseconds). `stamp_copy`
adds them, `take_copy_state` reads and removes them so handlers see the
original event.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import dumps_json, to_dict
from polybus.core.sizing import MB, SizeLimit

if TYPE_CHECKING:  # the SDK is imported only where events arrive (plugin.py imports this module)
    from azure.core.messaging import CloudEvent as AzureCloudEvent

_OPTIONAL = ("subject", "datacontenttype", "dataschema")
_VALID_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9-]")
MAX_NAME = 50
ATTEMPT_EXTENSION = "polybusattempt"
NOT_BEFORE_EXTENSION = "polybusnotbefore"
REDELIVERY_SUBSCRIPTION = "redeliveries"
SIZE_LIMIT = SizeLimit(1 * MB, "UTF-8 bytes of the JSON event as sent")


# -- events -------------------------------------------------------------------
def to_wire(event: CloudEvent) -> dict[str, Any]:
    """The CloudEvents JSON object Event Grid receives for `event` (a fresh dict)."""
    return to_dict(event)


def encode_wire(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of one wire object (an element of the posted batch)."""
    return dumps_json(obj).encode("utf-8")


def encode(event: CloudEvent) -> bytes:
    """The bytes the adapter sends for `event` (one element of the JSON batch)."""
    return encode_wire(to_dict(event))


def event_size(event: CloudEvent) -> int:
    """Event Grid's measure: the UTF-8 size of the JSON event as the adapter sends it."""
    return len(encode(event))


def batch_body(encoded: list[bytes]) -> bytes:
    """The request body: a JSON array of already encoded events."""
    return b"[" + b",".join(encoded) + b"]"


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
    from azure.core.messaging import CloudEvent as AzureCloudEvent

    return from_azure(AzureCloudEvent.from_dict(dict(obj)))


# -- names ----------------------------------------------------------------------
def native_name(name: str) -> str:
    """The Event Grid resource name for a portable topic or subscription name."""
    if _VALID_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cleaned = _INVALID_CHARS.sub("-", name)[: MAX_NAME - len(digest) - 1]
    return f"{cleaned}-{digest}"


def redelivery_topic_name(subscription: str) -> str:
    """The portable name of a subscription's private redelivery topic."""
    return f"{subscription}-redelivery"


# -- redelivery stamps ------------------------------------------------------------
@dataclass(frozen=True)
class CopyState:
    """What a received event says about its earlier life (all zero for an original)."""

    attempts_before: int = 0
    not_before_ms: int | None = None

    def attempt(self, delivery_count: int) -> int:
        """The portable attempt number of this delivery."""
        hidden = 1 if self.not_before_ms is not None else 0
        return self.attempts_before + delivery_count - hidden

    def must_hide(self, delivery_count: int) -> bool:
        """A delayed copy's first delivery is released, not handed out."""
        return self.not_before_ms is not None and delivery_count == 1

    def wait_left(self, now: float | None = None) -> float:
        """Seconds until the copy may be handed out (0 when due)."""
        if self.not_before_ms is None:
            return 0.0
        return max(0.0, self.not_before_ms / 1000 - (time.time() if now is None else now))


def take_copy_state(event: AzureCloudEvent) -> CopyState:
    """Remove the redelivery extensions from `event` and return what they said."""
    extensions: dict[str, Any] | None = event.extensions
    if not extensions or ATTEMPT_EXTENSION not in extensions:
        return CopyState()
    attempts = int(extensions.pop(ATTEMPT_EXTENSION))
    not_before = extensions.pop(NOT_BEFORE_EXTENSION, None)
    return CopyState(attempts, None if not_before is None else int(not_before))


def stamp_copy(wire: dict[str, Any], attempts: int, delay: float) -> dict[str, Any]:
    """`wire` (a fresh `to_wire` object, ours to change) stamped for the redelivery topic."""
    wire[ATTEMPT_EXTENSION] = attempts
    if delay > 0:
        wire[NOT_BEFORE_EXTENSION] = int((time.time() + delay) * 1000)
    return wire
