"""The one contract every adapter implements, and the values that cross it.

An adapter moves CloudEvents between topics and subscriptions of one provider.
It publishes batches, provisions subscriptions from a portable
`SubscriptionSpec`, hands out `Delivery` objects that are acked or nacked, and
dead-letters a delivery natively once the policy's attempts are used up.
`core.bus.Bus` puts retries, client-side (residual) filtering, middleware and
handler dispatch on top, so an adapter stays small.

The contract suite in tests/contract/ checks every registered adapter against
this module, unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import Problem, ValidationError
from polybus.core.filters.dialects import Filter

DEFAULT_TOPIC = "events"

#: Jitter draws: a generator of polybus's own, so retries neither read nor move the global `random`.
_JITTER = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between delivery attempts: initial * multiplier**(n-1), capped, jittered."""

    initial_backoff: float = 0.1
    max_backoff: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before redelivering after failed attempt number `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        if self.jitter <= 0:
            return base
        spread = base * self.jitter
        return max(0.0, base + (rng or _JITTER).uniform(-spread, spread))


@dataclass(frozen=True)
class DeliveryPolicy:
    """How a subscription retries and when it gives up.

    After `max_delivery_attempts` failed deliveries the event goes to the
    dead-letter target (default: ``<subscription>-dlq``): nothing is dropped.
    `ordered` delivers events with the same ``partitionkey`` extension in order.
    `ack_deadline` is how long a delivery stays invisible to other consumers.
    """

    max_delivery_attempts: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter: str | None = None
    ordered: bool = False
    ack_deadline: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.max_delivery_attempts <= 100:
            problems.append(
                Problem("max_delivery_attempts", self.max_delivery_attempts, "must be 1..100")
            )
        if self.retry.initial_backoff < 0 or self.retry.max_backoff < 0:
            problems.append(Problem("retry", self.retry, "backoff seconds must be >= 0"))
        if self.ack_deadline <= 0:
            problems.append(Problem("ack_deadline", self.ack_deadline, "must be > 0 seconds"))
        if problems:
            raise ValidationError("invalid delivery policy", problems)

    def dead_letter_name(self, subscription: str) -> str:
        """The dead-letter target's name for `subscription`."""
        return self.dead_letter or f"{subscription}-dlq"


@dataclass(frozen=True)
class SubscriptionSpec:
    """A portable subscription: which topic, which events, how to deliver them."""

    name: str
    topic: str = DEFAULT_TOPIC
    filter: Filter | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)


class Delivery(Protocol):
    """One delivery of an event to a consumer; settle it exactly once."""

    @property
    def event(self) -> CloudEvent:
        """The delivered event."""
        ...

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, ..."""
        ...

    def ack(self) -> None:
        """Done with it: never deliver it again."""
        ...

    def nack(self, delay: float = 0.0) -> None:
        """Failed: deliver it again after `delay` seconds, or dead-letter it when attempts are used up."""
        ...

    def dead_letter(self, reason: str) -> None:
        """Move it to the dead-letter target now, with `reason` (e.g. invalid input)."""
        ...


@runtime_checkable
class RenewableDelivery(Protocol):
    """A delivery whose lease can be extended while its handler works.

    The runtime renews the lease of every delivery a handler is working on
    (Pub/Sub modifyAckDeadline, SQS ChangeMessageVisibility, Event Grid
    renewLock, the local lease), so a slow handler never loses its event to
    another consumer. Adapters whose deliveries lack `extend` rely on the
    subscription's ack deadline alone.
    """

    def extend(self, seconds: float) -> None:
        """Keep this delivery invisible to other consumers for `seconds` more, from now."""
        ...


@runtime_checkable
class Adapter(Protocol):
    """A provider's bus: publish, provision, receive, settle, close."""

    name: str

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish a batch to `topic`; raises PublishError naming each event that failed."""
        ...

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update the subscription idempotently; return the residual filter.

        The residual is the part of `spec.filter` the provider cannot evaluate
        natively (None when fully native); the bus evaluates it after delivery.
        """
        ...

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> Sequence[Delivery]:
        """Up to `max_events` deliveries, waiting at most `timeout` seconds for the first."""
        ...

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> Sequence[Delivery]:
        """Deliveries from the subscription's dead-letter target; ack them to remove them."""
        ...

    def delete_subscription(self, subscription: str) -> None:
        """Remove the subscription and what was created for it (idempotent)."""
        ...

    def close(self) -> None:
        """Release connections and threads; unsettled deliveries become visible again."""
        ...


@runtime_checkable
class SupportsReplay(Protocol):
    """An adapter that can redeliver a topic's events published since a point in time."""

    def replay(self, subscription: str, since: datetime) -> None:
        """Redeliver to `subscription` every event of its topic published at or after `since`."""
        ...


@dataclass(frozen=True)
class BacklogStats:
    """A subscription's lag, the same three figures on every provider.

    `undelivered`: events waiting to be delivered (not in flight); `in_flight`:
    leased and not settled (None where the provider does not say);
    `oldest_age`: seconds since the oldest unacked event was published (None
    when there is none, or the provider does not say); `dead_letters`: events
    in the dead-letter target.
    """

    subscription: str
    undelivered: int
    in_flight: int | None
    oldest_age: float | None
    dead_letters: int


@runtime_checkable
class SupportsBacklog(Protocol):
    """An adapter that reports a subscription's backlog (the portable lag gauge)."""

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """The subscription's backlog, oldest unacked age and dead-letter depth, now."""
        ...
