"""Portable delivery counts above Event Grid's 10 for namespace pull subscriptions.

Event Grid dead-letters a namespace event once its delivery count reaches
``maxDeliveryCount`` (1..10). When the portable ``max_delivery_attempts`` is
larger, the adapter gives each subscription a private redelivery topic
(``<subscription>-redelivery``, pull subscription ``redeliveries``). A nack
on the native 10th delivery, while portable attempts remain, publishes a
copy of the event to that topic carrying two extensions, then acknowledges
the original:

- ``polybusattempt``: the portable attempts already made (int);
- ``polybusnotbefore``: epoch milliseconds before which it must not be handed
  out (only when the nack asked for a delay).

The adapter reads both subscriptions; it strips the extensions, so handlers
see the original event, and numbers the copy's deliveries on from
``polybusattempt``. A copy with ``polybusnotbefore`` is released once on its
first delivery with the smallest release delay covering the rest of the
wait (Event Grid cannot schedule a publish), which costs it one native
delivery, not a portable attempt. A copy can be republished again the same
way; when the portable attempts are used up, nack rejects it, which
dead-letters it to the subscription's dead-letter topic.

The copy goes to a topic of its own, never back to the original topic, so
other subscriptions of that topic do not see it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.messaging import CloudEvent as AzureCloudEvent

ATTEMPT_EXTENSION = "polybusattempt"
NOT_BEFORE_EXTENSION = "polybusnotbefore"
REDELIVERY_SUBSCRIPTION = "redeliveries"
NATIVE_MAX_DELIVERY_COUNT = 10


def redelivery_topic_name(subscription: str) -> str:
    """The portable name of a subscription's private redelivery topic."""
    return f"{subscription}-redelivery"


@dataclass(frozen=True)
class Budget:
    """A subscription's delivery limits: portable attempts, native count, how to go beyond."""

    max_attempts: int
    native_max: int = NATIVE_MAX_DELIVERY_COUNT
    republish: Callable[[AzureCloudEvent], None] | None = None

    def needs_redelivery_topic(self) -> bool:
        """Whether the portable count is above what Event Grid counts natively."""
        return self.max_attempts > self.native_max


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


def stamp_copy(event: AzureCloudEvent, attempts: int, delay: float) -> AzureCloudEvent:
    """`event` (freshly converted, so ours to change) stamped for the redelivery topic."""
    extensions = dict(event.extensions or {})
    extensions[ATTEMPT_EXTENSION] = attempts
    if delay > 0:
        extensions[NOT_BEFORE_EXTENSION] = int((time.time() + delay) * 1000)
    event.extensions = extensions
    return event
