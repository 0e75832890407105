"""CloudEvent <-> EventBridge: the PutEvents entry going out, the envelope coming back.

Going out (one PutEventsRequestEntry per event):

    Source       = the CloudEvent's source
    DetailType   = its type
    Time         = its time (when set)
    Detail       = the whole event in the CloudEvents JSON format: every
                   attribute (id, source, type, specversion, time, subject,
                   datacontenttype, dataschema, extensions) plus `data` for
                   JSON or text data, or `data_base64` for binary data
    EventBusName = the topic's bus

Event patterns therefore match CloudEvent attributes as ``detail.<name>``
(and source / detail-type at the top level). Coming back, a rule's SQS
target receives the EventBridge envelope ({"version", "id", "detail-type",
"source", "account", "time", "region", "resources", "detail", ...}); decoding
reads the event from `detail` alone, so it is the event that was published.
Extension values typed Timestamp or Binary travel as their canonical strings,
exactly as in the CloudEvents JSON format, and are read back as strings.

An envelope whose detail is not a CloudEvent (an AWS service event, or one
put by another producer) is read as a CloudEvent with the envelope's id,
source, detail-type as type, time, and the detail as JSON data.

Size: AWS counts an entry as 14 bytes for a supplied Time plus the UTF-8
bytes of Source, DetailType, Detail and each Resource, and a PutEvents
request must total less than 256 KB (eb-putevent-size.html). `to_entry`
serialises the event once and measures what it built; `event_size` is that
same measure, registered as the plugin's Sizing.

Names (the rest of this module): how portable topic and subscription names
become AWS resource names.

topic "orders"            -> event bus   "<bus_prefix>orders"        (default "polybus-orders")
                          -> archive     "<bus name>-archive"
subscription "billing"    -> rule        "<queue_prefix>billing"     (on the topic's bus)
                          -> SQS queue   "<queue_prefix>billing"
dead-letter "billing-dlq" -> SQS queue   "<queue_prefix>billing-dlq"
ordered subscriptions use FIFO queues: "<queue_prefix>billing.fifo", "...-dlq.fifo"

AWS allows fewer characters and shorter names than polybus does (bus 256,
rule and replay 64, queue 80, archive 48 characters). A name that fits is used
as is; otherwise characters AWS refuses become "-" and, when anything changed
or the name is too long, it is cut and suffixed with 8 hex digits of its
SHA-256, so the mapping stays deterministic and distinct names stay distinct.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import from_dict, to_json
from polybus.core.sizing import KB, SizeLimit
from polybus.core.tracing.carriers import TRACEPARENT, to_xray

TIME_SIZE = 14  # a supplied Time counts as 14 bytes (eb-putevent-size.html)
REQUEST_LIMIT = 256 * KB  # the total entry size of one PutEvents must be less than this
MAX_ENTRIES = 10
#: One entry must fit in a request on its own: strictly less than 256 KB.
SIZE_LIMIT = SizeLimit(
    REQUEST_LIMIT,
    counted="14 for Time + UTF-8 bytes of Source, DetailType and Detail",
    strict=True,
)


@dataclass(frozen=True)
class Entry:
    """One PutEvents request entry, with the event id it carries and its size as AWS counts it."""

    event_id: str
    request: dict[str, Any]
    size: int


def to_entry(event: CloudEvent, bus: str) -> Entry:
    """The PutEvents entry carrying `event` to the bus named `bus`."""
    attrs = event.get_attributes()
    encoded = to_json(event)
    request: dict[str, Any] = {
        "Source": attrs["source"],
        "DetailType": attrs["type"],
        "Detail": encoded.decode("utf-8"),
        "EventBusName": bus,
    }
    size = len(attrs["source"].encode()) + len(attrs["type"].encode()) + len(encoded)
    time = attrs.get("time")
    if time is not None:
        request["Time"] = time
        size += TIME_SIZE
    traceparent = attrs.get(TRACEPARENT)
    if traceparent is not None:  # EventBridge's native carrier: X-Ray, not counted in the size
        header = to_xray(traceparent)
        if header is not None:
            request["TraceHeader"] = header
    return Entry(attrs["id"], request, size)


def event_size(event: CloudEvent) -> int:
    """The PutEvents entry size of `event` as AWS counts it (the entry `to_entry` builds)."""
    return to_entry(event, "").size


def from_envelope(envelope: Mapping[str, Any]) -> CloudEvent:
    """The CloudEvent inside an EventBridge event envelope (as delivered to a target)."""
    detail = envelope.get("detail")
    if isinstance(detail, Mapping) and "specversion" in detail:
        return from_dict(detail)
    if not isinstance(envelope.get("source"), str) or not isinstance(envelope.get("id"), str):
        raise EventValidationError(
            "not an EventBridge event", [Problem("envelope", _preview(envelope), "no id/source")]
        )
    return _foreign_event(envelope)


def from_sqs_body(body: str) -> tuple[CloudEvent, dict[str, Any]]:
    """Decode an SQS message body written by an EventBridge SQS target.

    Returns the event and the envelope (empty when the body is a bare
    structured CloudEvent, as when a dead letter was sent by another tool).
    Raises EventValidationError for anything else.
    """
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise EventValidationError(
            "undecodable SQS message", [Problem("body", body[:60], f"not JSON: {exc}")]
        ) from exc
    if not isinstance(obj, dict):
        raise EventValidationError(
            "undecodable SQS message", [Problem("body", body[:60], "must be a JSON object")]
        )
    if "detail" in obj and "detail-type" in obj:
        return from_envelope(obj), obj
    if "specversion" in obj:
        return from_dict(obj, owned=True), {}
    raise EventValidationError(
        "undecodable SQS message",
        [Problem("body", body[:60], "neither an EventBridge envelope nor a CloudEvent")],
    )


def _foreign_event(envelope: Mapping[str, Any]) -> CloudEvent:
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": envelope["id"],
        "source": envelope["source"],
        "type": str(envelope.get("detail-type") or "aws.event"),
        "datacontenttype": "application/json",
    }
    time = envelope.get("time")
    if isinstance(time, str):
        with contextlib.suppress(ValueError):  # keep the event, without a time
            attrs["time"] = datetime.fromisoformat(time)
    data = envelope.get("detail")
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def _preview(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


# -- names ------------------------------------------------------------------

_BUS_BAD = re.compile(r"[^A-Za-z0-9._-]")  # "/" is for partner buses only
_RULE_BAD = re.compile(r"[^A-Za-z0-9._-]")
_QUEUE_BAD = re.compile(r"[^A-Za-z0-9_-]")


def _fit(name: str, bad: re.Pattern[str], limit: int) -> str:
    cleaned = bad.sub("-", name)
    if cleaned == name and len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[: limit - 9]}-{digest}"


def bus_name(prefix: str, topic: str) -> str:
    """The custom event bus for a portable topic."""
    return _fit(f"{prefix}{topic}", _BUS_BAD, 256)


def archive_name(bus: str) -> str:
    """The archive that records every event on `bus` (for replay)."""
    return _fit(f"{bus}-archive", _RULE_BAD, 48)


def rule_name(prefix: str, subscription: str) -> str:
    """The rule (on the topic's bus) that routes a subscription's events to its queue."""
    return _fit(f"{prefix}{subscription}", _RULE_BAD, 64)


def queue_name(prefix: str, subscription: str, *, fifo: bool = False) -> str:
    """The SQS queue of a subscription or dead-letter target (FIFO ones end in ".fifo")."""
    if fifo:
        return _fit(f"{prefix}{subscription}", _QUEUE_BAD, 75) + ".fifo"
    return _fit(f"{prefix}{subscription}", _QUEUE_BAD, 80)


def replay_name(rule: str, unique: str) -> str:
    """A replay name for one replay of `rule`'s events; `unique` tells replays apart."""
    return _fit(f"{rule[: 63 - len(unique)]}-{unique}", _RULE_BAD, 64)
