"""The CloudEvents correlation extension, set when a handler publishes (always on, no dependency).

When a handler publishes, the new event gets ``causationid`` = the id of the
event being handled and ``correlationid`` = that event's ``correlationid``
(or its id when it has none), so every event of a business flow carries the
id of the flow's first event. An event published outside a handler starts
its own flow and is left as it is (`correlation_id` reads a missing
``correlationid`` as the event's own id), so a plain publish costs nothing.
Values the caller set are kept. The runtime applies `correlate` on the
publish paths of handlers (Context.publish / publish_now), where
polybus.core.runtime.current names the handled event.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudevents.core.v1.event import CloudEvent

from polybus.core.events import build_event
from polybus.core.runtime.current import current_event

CORRELATION_ID = "correlationid"
CAUSATION_ID = "causationid"


def correlation_id(event: CloudEvent) -> str:
    """The flow an event belongs to: its correlationid, or its own id when it starts a flow."""
    value = event.get_extension(CORRELATION_ID)
    return value if isinstance(value, str) and value else event.get_id()


def correlation_attributes(event: CloudEvent, cause: CloudEvent | None) -> dict[str, str]:
    """The correlation attributes `event` lacks, given the event being handled (`cause`) if any."""
    additions: dict[str, str] = {}
    if event.get_extension(CORRELATION_ID) is None:
        additions[CORRELATION_ID] = event.get_id() if cause is None else correlation_id(cause)
    if cause is not None and event.get_extension(CAUSATION_ID) is None:
        additions[CAUSATION_ID] = cause.get_id()
    return additions


def correlate(events: CloudEvent | Sequence[CloudEvent]) -> CloudEvent | list[CloudEvent]:
    """`events` with the correlation attributes they lack, when published inside a handler."""
    cause = current_event.get()
    if cause is None:
        return events if isinstance(events, CloudEvent) else list(events)
    if isinstance(events, CloudEvent):
        return _with(events, cause)
    return [_with(event, cause) for event in events]


def _with(event: CloudEvent, cause: CloudEvent) -> CloudEvent:
    additions = correlation_attributes(event, cause)
    if not additions:
        return event
    return build_event({**event.get_attributes(), **additions}, event.get_data())
