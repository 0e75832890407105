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
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import build_event, validate_attributes
from polybus.core.formats import from_dict, to_json

TIME_SIZE = 14  # a supplied Time counts as 14 bytes (eb-putevent-size.html)
REQUEST_LIMIT = 256 * 1024  # the total entry size of one PutEvents must be less than this
MAX_ENTRIES = 10


@dataclass(frozen=True)
class Entry:
    """One PutEvents request entry, with the event id it carries and its size as AWS counts it."""

    event_id: str
    request: dict[str, Any]
    size: int


def entry_size(request: Mapping[str, Any]) -> int:
    """A PutEventsRequestEntry's size: 14 for Time plus the UTF-8 bytes of the strings."""
    size = TIME_SIZE if request.get("Time") is not None else 0
    size += len(request["Source"].encode()) + len(request["DetailType"].encode())
    detail = request.get("Detail")
    if detail is not None:
        size += len(detail.encode())
    return size + sum(len(r.encode()) for r in request.get("Resources", ()))


def to_entry(event: CloudEvent, bus: str) -> Entry:
    """The PutEvents entry carrying `event` to the bus named `bus`."""
    attrs = event.get_attributes()
    detail = to_json(event).decode("utf-8")
    request: dict[str, Any] = {
        "Source": attrs["source"],
        "DetailType": attrs["type"],
        "Detail": detail,
        "EventBusName": bus,
    }
    size = len(attrs["source"].encode()) + len(attrs["type"].encode()) + len(detail.encode())
    time = attrs.get("time")
    if time is not None:
        request["Time"] = time
        size += TIME_SIZE
    return Entry(attrs["id"], request, size)


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
