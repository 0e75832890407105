"""Measure events the way each provider counts them, and reject what cannot fit.

Each rule is a (measure, limit) pair: EventBridge counts 14 bytes for a
supplied Time plus the UTF-8 bytes of Source, DetailType and Detail against
256 KB per PutEvents request (eb-putevent-size.html); Event Grid counts the
JSON event against 1 MB; Pub/Sub counts the message data plus attribute keys
and values against 10 MB. Checking happens before the network, so an
oversized event fails with an error naming the event, its size and the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloudevents.core.v1.event import CloudEvent

from core.errors import EventTooLargeError, Problem
from core.formats import to_dict, to_json

KB = 1024
MB = 1024 * KB


def eventbridge_size(event: CloudEvent) -> int:
    """PutEvents entry size: 14 (Time) + Source + DetailType + Detail (the JSON event) in UTF-8."""
    attrs = event.get_attributes()
    detail = to_json(event)
    size = len(attrs["source"].encode()) + len(attrs["type"].encode()) + len(detail)
    return size + (14 if attrs.get("time") is not None else 0)


def eventgrid_size(event: CloudEvent) -> int:
    """The structured JSON event's UTF-8 size (Event Grid counts the serialized event)."""
    return len(to_json(event))


def pubsub_size(event: CloudEvent) -> int:
    """Binary-mode message size: data bytes plus ce-* attribute keys and values."""
    body = to_dict(event)
    data = body.pop("data", None)
    encoded = body.pop("data_base64", None)
    if data is None and encoded is None:
        payload = 0
    elif isinstance(data, str):
        payload = len(data.encode())
    elif encoded is not None:
        payload = len(encoded) * 3 // 4
    else:
        import json

        payload = len(json.dumps(data, separators=(",", ":")).encode())
    attrs = sum(len(f"ce-{k}".encode()) + len(str(v).encode()) for k, v in body.items())
    return payload + attrs


@dataclass(frozen=True)
class SizeRule:
    """How a provider measures an event and the most it accepts."""

    name: str
    measure: Callable[[CloudEvent], int]
    limit: int
    strict: bool = False  # True when the size must be *under* the limit

    def fits(self, size: int) -> bool:
        """Whether an event of `size` bytes is accepted."""
        return size < self.limit if self.strict else size <= self.limit


RULES: dict[str, SizeRule] = {
    "eventbridge": SizeRule("eventbridge", eventbridge_size, 256 * KB, strict=True),
    "eventgrid": SizeRule("eventgrid", eventgrid_size, 1 * MB),
    "pubsub": SizeRule("pubsub", pubsub_size, 10 * MB),
    "none": SizeRule("none", lambda event: 0, 1 << 62),
}


def check_sizes(events: Sequence[CloudEvent], rule_name: str, provider: str) -> None:
    """Raise EventTooLargeError naming every event over the provider's limit."""
    rule = RULES[rule_name]
    if rule_name == "none":
        return
    problems = []
    for event in events:
        size = rule.measure(event)
        if not rule.fits(size):
            problems.append(
                Problem(
                    f"event {event.get_id()}",
                    f"{size} bytes",
                    f"{provider} accepts {'less than' if rule.strict else 'at most'} "
                    f"{rule.limit} bytes per event ({rule.name} sizing)",
                )
            )
    if problems:
        raise EventTooLargeError(f"event too large for provider {provider!r}", problems)
