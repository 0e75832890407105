"""Provider size limits, checked on the bytes an adapter actually sends.

Every provider counts an event its own way (EventBridge: Time + Source +
DetailType + Detail; Event Grid: the JSON event; Pub/Sub: data plus
attributes). Those formulas belong to the adapters: each adapter encodes an
event once, measures what it encoded, and calls `SizeLimit.check` before
the network. The plugin registers a `Sizing` (the limit plus a `measure`
built from the same encoder) so tools can size an event offline without a
second formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventTooLargeError, Problem

KB = 1024
MB = 1024 * KB


@dataclass(frozen=True)
class SizeLimit:
    """The most a provider accepts per event, and how it counts (for the error message)."""

    limit: int
    counted: str = "bytes of the encoded event"
    strict: bool = False  # True when the size must be *under* the limit

    def fits(self, size: int) -> bool:
        """Whether an event of `size` bytes is accepted."""
        return size < self.limit if self.strict else size <= self.limit

    def check(self, sized: Iterable[tuple[str, int]], provider: str) -> None:
        """Raise EventTooLargeError naming every (event id, size) over the limit."""
        problems = [
            Problem(
                f"event {event_id}",
                f"{size} bytes",
                f"{provider} accepts {'less than' if self.strict else 'at most'} "
                f"{self.limit} bytes per event ({self.counted})",
            )
            for event_id, size in sized
            if not self.fits(size)
        ]
        if problems:
            raise EventTooLargeError(f"event too large for provider {provider!r}", problems)


@dataclass(frozen=True)
class Sizing:
    """A provider's limit and the measure of one event as the adapter encodes it."""

    limit: SizeLimit
    measure: Callable[[CloudEvent], int]

    def check(self, events: Iterable[CloudEvent], provider: str) -> None:
        """Measure each event offline and raise EventTooLargeError for those over the limit."""
        self.limit.check(((e.get_id(), self.measure(e)) for e in events), provider)
