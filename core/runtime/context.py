"""What a handler receives besides the event: attempt, subscription, settle requests, publishing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cloudevents.core.v1.event import CloudEvent

from polybus.core.contract import DEFAULT_TOPIC

if TYPE_CHECKING:  # SQLAlchemy is the optional `sql` extra; only idempotent handlers get these
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

Publisher = Callable[[CloudEvent | Sequence[CloudEvent], str], Awaitable[None]]
BlockingPublisher = Callable[[CloudEvent | Sequence[CloudEvent], str], None]


@dataclass(frozen=True)
class Decision:
    """How the handler asked to settle its delivery instead of the default ack."""

    action: str  # "nack" or "dead-letter"
    delay: float = 0.0
    reason: str = ""


@dataclass
class Context:
    """The delivery a handler is working on, and what it may do about it.

    ``await ctx.publish(event, topic=...)`` publishes without blocking the
    loop; a sync handler (running in a worker thread) calls
    ``ctx.publish_now(...)`` instead. ``ctx.nack(delay)`` and
    ``ctx.dead_letter(reason)`` replace the ack that follows a normal return.
    An idempotent subscriber (``@app.subscriber(..., idempotent=True)``) also
    gets the inbox transaction: ``ctx.connection`` (an SQLAlchemy Connection)
    and ``ctx.session`` (an ORM Session joined to it); what the handler writes
    through either commits with the inbox row, or not at all.
    """

    subscription: str
    attempt: int
    event: CloudEvent
    _publish: Publisher = field(repr=False)
    _publish_now: BlockingPublisher = field(repr=False)
    decision: Decision | None = None
    connection: Connection | None = field(default=None, repr=False)
    session: Session | None = field(default=None, repr=False)

    def nack(self, delay: float = 0.0) -> None:
        """Settle as failed: redeliver after `delay` seconds (dead-lettered when attempts are used up)."""
        self.decision = Decision("nack", delay=max(0.0, delay))

    def dead_letter(self, reason: str) -> None:
        """Settle by moving the event to the dead-letter target now, with `reason`."""
        self.decision = Decision("dead-letter", reason=reason)

    async def publish(
        self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC
    ) -> None:
        """Publish from an async handler (never blocks the event loop)."""
        await self._publish(events, topic)

    def publish_now(
        self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC
    ) -> None:
        """Publish from a sync handler (blocks its worker thread, not the loop)."""
        self._publish_now(events, topic)
