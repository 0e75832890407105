"""The delivery a handler is working on, visible to code it calls (middleware, tracing).

The runtime sets `current_event` around every handler call, and copies the
context into the threads that run sync handlers and publishes, so a
``polybus_before_publish`` implementation can tell which event caused the one
being published (the correlation extension, trace context).
"""

from __future__ import annotations

from contextvars import ContextVar

from cloudevents.core.v1.event import CloudEvent

current_event: ContextVar[CloudEvent | None] = ContextVar("polybus_current_event", default=None)
current_subscription: ContextVar[str | None] = ContextVar(
    "polybus_current_subscription", default=None
)
