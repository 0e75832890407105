"""Namespace topics with pull delivery: the broker state behind the emulator's HTTP routes.

Everything here runs on the emulator's event loop (no locks). A subscription
keeps ready events, delayed ones (released with a delay) and locked ones (handed
to a consumer). A receive locks up to N events for the lock duration and bumps
their delivery count; acknowledge drops them; release makes them visible again
(after a delay); reject dead-letters them; renewLock locks them again for the
subscription's lock duration from now (Event Grid takes no duration), fails
for unknown, settled or expired tokens, and fails once the event has been
locked for `max_lock_hold` seconds (an hour, as on Event Grid). An expired
lock counts as a release. A released or expired event whose delivery
count has reached the subscription's max delivery count is dead-lettered.

Dead-lettered events are kept per subscription (read through the admin API)
and, when the subscription names a ``deadLetterTopic`` (an emulator
extension: real Azure writes them to a storage blob), published to that
namespace topic with the dead-letter metadata under
``brokerProperties.deadLetterProperties``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from polybus.adapters.azure.emulator.filter import EventPredicate, compile_subscription_filter

RELEASE_DELAYS = (0, 10, 60, 600, 3600)
MAX_RECEIVE_EVENTS = 100
MAX_WAIT_SECONDS = 120.0
MAX_LOCK_HOLD = 3600.0  # renewLock works within an hour of the receive
_seq = itertools.count()


def utc_iso(moment: datetime | None = None) -> str:
    """RFC 3339 UTC timestamp with a Z suffix."""
    return (moment or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


class BrokerError(Exception):
    """A request the broker refuses; `status` and `code` become the HTTP error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Stored:
    """One event's delivery state within one subscription."""

    event: Mapping[str, Any]
    publish_time: str
    delivery_count: int = 0
    lock_token: str | None = None
    lock_expires: float = 0.0
    locked_at: float = 0.0
    last_attempt: str = ""
    dead_letter: Mapping[str, Any] | None = None


@dataclass
class PullSubscription:
    """A namespace event subscription with queue delivery."""

    topic: str
    name: str
    filter_spec: Mapping[str, Any] | None = None
    max_delivery_count: int = 10
    lock_duration: float = 60.0
    dead_letter_topic: str | None = None
    matches: EventPredicate = field(default=lambda event: True)
    ready: deque[Stored] = field(default_factory=deque)
    delayed: list[tuple[float, int, Stored]] = field(default_factory=list)
    locked: dict[str, Stored] = field(default_factory=dict)
    lock_heap: list[tuple[float, int, str]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: int = (
        0  # events acknowledged so far (Azure Monitor's SuccessfulAcknowledgedEvents)
    )
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The subscription's settings and queue depths, for the admin API."""
        return {
            "topic": self.topic,
            "name": self.name,
            "filter": self.filter_spec,
            "maxDeliveryCount": self.max_delivery_count,
            "lockDurationInSeconds": self.lock_duration,
            "deadLetterTopic": self.dead_letter_topic,
            "ready": len(self.ready),
            "delayed": len(self.delayed),
            "locked": len(self.locked),
            "deadLettered": len(self.dead_letters),
            "oldestPublishTime": self.oldest_publish_time(),
        }

    def oldest_publish_time(self) -> str | None:
        """The publish time of the oldest event not yet settled (polybus's backlog gauge)."""
        items = [*self.ready, *(entry[2] for entry in self.delayed), *self.locked.values()]
        if not items:
            return None
        return min(items, key=lambda item: datetime.fromisoformat(item.publish_time)).publish_time

    def wake(self) -> None:
        """Wake every receive waiting on this subscription."""
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


class Namespace:
    """The namespace topics of one emulator and their pull subscriptions."""

    def __init__(self, clock: Callable[[], float], time_scale: float = 1.0) -> None:
        self.clock = clock
        self.time_scale = time_scale
        self.topics: dict[str, dict[str, PullSubscription]] = {}
        self.closed = False
        self.max_lock_hold = MAX_LOCK_HOLD

    # -- management ---------------------------------------------------------
    def create_topic(self, topic: str) -> None:
        """Create a topic (idempotent)."""
        self.topics.setdefault(topic, {})

    def delete_topic(self, topic: str) -> None:
        """Delete a topic and its subscriptions (idempotent)."""
        for sub in self.topics.pop(topic, {}).values():
            sub.wake()

    def put_subscription(
        self, topic: str, name: str, config: Mapping[str, Any]
    ) -> PullSubscription:
        """Create or update a subscription; queued events survive an update."""
        if topic not in self.topics:
            raise BrokerError(404, "NotFound", f"namespace topic {topic!r} does not exist")
        filter_spec = config.get("filter") or None
        max_count = int(config.get("maxDeliveryCount", 10))
        lock = float(config.get("lockDurationInSeconds", 60))
        if not 1 <= max_count <= 10:
            raise BrokerError(400, "BadRequest", "maxDeliveryCount must be 1..10")
        if lock <= 0 or lock > 300:
            raise BrokerError(400, "BadRequest", "lockDurationInSeconds must be in (0, 300]")
        matches = compile_subscription_filter(filter_spec)
        sub = self.topics[topic].get(name) or PullSubscription(topic, name)
        sub.filter_spec = filter_spec
        sub.max_delivery_count = max_count
        sub.lock_duration = lock
        sub.dead_letter_topic = config.get("deadLetterTopic") or None
        sub.matches = matches
        self.topics[topic][name] = sub
        return sub

    def subscription(self, topic: str, name: str) -> PullSubscription:
        """The named subscription, or a 404 BrokerError."""
        sub = self.topics.get(topic, {}).get(name)
        if sub is None:
            raise BrokerError(404, "NotFound", f"event subscription {topic}/{name} does not exist")
        return sub

    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription (idempotent)."""
        sub = self.topics.get(topic, {}).pop(name, None)
        if sub is not None:
            sub.wake()

    # -- data plane ---------------------------------------------------------
    def publish(self, topic: str, events: list[Mapping[str, Any]]) -> None:
        """Fan the events out to every subscription whose filter matches."""
        subs = self.topics.get(topic)
        if subs is None:
            raise BrokerError(404, "NotFound", f"namespace topic {topic!r} does not exist")
        now = utc_iso()
        for sub in subs.values():
            added = False
            for event in events:
                if sub.matches(event):
                    sub.ready.append(Stored(event, now))
                    added = True
            if added:
                sub.wake()

    async def receive(self, topic: str, name: str, max_events: int, wait: float) -> list[Stored]:
        """Lock and return up to `max_events`, waiting up to `wait` seconds for the first."""
        sub = self.subscription(topic, name)
        deadline = self.clock() + wait
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock()
            self._settle_due(sub, now)
            if sub.ready or now >= deadline:
                return self._lock(sub, max_events, now)
            waiter: asyncio.Future[None] = loop.create_future()
            sub.waiters.append(waiter)
            await asyncio.wait({waiter}, timeout=min(deadline, self._next_due(sub)) - now)
            if not waiter.done():
                waiter.cancel()
                if waiter in sub.waiters:
                    sub.waiters.remove(waiter)
            if self.closed or self.topics.get(topic, {}).get(name) is not sub:
                return []

    def acknowledge(self, topic: str, name: str, tokens: list[str]) -> dict[str, Any]:
        """Drop the locked events; unknown or expired tokens fail."""
        result = self._settle(topic, name, tokens, lambda sub, item: None)
        self.subscription(topic, name).acknowledged += len(result["succeededLockTokens"])
        return result

    def release(self, topic: str, name: str, tokens: list[str], delay: int) -> dict[str, Any]:
        """Make the locked events visible again after `delay` (scaled) seconds."""
        if delay not in RELEASE_DELAYS:
            raise BrokerError(
                400, "BadRequest", f"releaseDelayInSeconds must be one of {RELEASE_DELAYS}"
            )
        return self._settle(
            topic, name, tokens, lambda sub, item: self._requeue(sub, item, delay * self.time_scale)
        )

    def reject(self, topic: str, name: str, tokens: list[str]) -> dict[str, Any]:
        """Dead-letter the locked events at once."""
        return self._settle(
            topic, name, tokens, lambda sub, item: self._dead_letter(sub, item, "Rejected")
        )

    def renew_locks(self, topic: str, name: str, tokens: list[str]) -> dict[str, Any]:
        """Lock again for the lock duration from now, within `max_lock_hold` of the receive."""
        sub = self.subscription(topic, name)
        now = self.clock()
        self._settle_due(sub, now)
        ok, failed = [], []
        for token in tokens:
            item = sub.locked.get(token)
            if item is None:
                failed.append(_token_failure(token))
                continue
            if now - item.locked_at >= self.max_lock_hold:
                failed.append(
                    _token_failure(token, "the lock cannot be renewed beyond an hour of receive")
                )
                continue
            item.lock_expires = min(now + sub.lock_duration, item.locked_at + self.max_lock_hold)
            heapq.heappush(sub.lock_heap, (item.lock_expires, next(_seq), token))
            ok.append(token)
        return {"succeededLockTokens": ok, "failedLockTokens": failed}

    # -- internals ----------------------------------------------------------
    def _settle(
        self,
        topic: str,
        name: str,
        tokens: list[str],
        action: Callable[[PullSubscription, Stored], None],
    ) -> dict[str, Any]:
        sub = self.subscription(topic, name)
        self._settle_due(sub, self.clock())
        ok, failed = [], []
        for token in tokens:
            item = sub.locked.pop(token, None)
            if item is None:
                failed.append(_token_failure(token))
                continue
            item.lock_token = None
            action(sub, item)
            ok.append(token)
        return {"succeededLockTokens": ok, "failedLockTokens": failed}

    def _lock(self, sub: PullSubscription, max_events: int, now: float) -> list[Stored]:
        out: list[Stored] = []
        attempt_time = utc_iso()
        while sub.ready and len(out) < max_events:
            item = sub.ready.popleft()
            item.delivery_count += 1
            item.last_attempt = attempt_time
            item.lock_token = uuid.uuid4().hex
            item.lock_expires = now + sub.lock_duration
            item.locked_at = now
            sub.locked[item.lock_token] = item
            heapq.heappush(sub.lock_heap, (item.lock_expires, next(_seq), item.lock_token))
            out.append(item)
        return out

    def _requeue(self, sub: PullSubscription, item: Stored, delay: float) -> None:
        if item.delivery_count >= sub.max_delivery_count:
            self._dead_letter(sub, item, "MaxDeliveryCountExceeded")
        elif delay > 0:
            heapq.heappush(sub.delayed, (self.clock() + delay, next(_seq), item))
        else:
            sub.ready.append(item)
            sub.wake()

    def _settle_due(self, sub: PullSubscription, now: float) -> None:
        """Expire overdue locks (as releases) and make due delayed events ready."""
        while sub.lock_heap and sub.lock_heap[0][0] <= now:
            _, _, token = heapq.heappop(sub.lock_heap)
            item = sub.locked.get(token)
            if item is not None and item.lock_expires <= now:
                del sub.locked[token]
                item.lock_token = None
                self._requeue(sub, item, 0)
        while sub.delayed and sub.delayed[0][0] <= now:
            sub.ready.append(heapq.heappop(sub.delayed)[2])

    def _next_due(self, sub: PullSubscription) -> float:
        times = [h[0][0] for h in (sub.lock_heap, sub.delayed) if h]
        return min(times) if times else float("inf")

    def _dead_letter(self, sub: PullSubscription, item: Stored, reason: str) -> None:
        properties = {
            "deadLetterReason": reason,
            "deliveryAttempts": item.delivery_count,
            "lastDeliveryOutcome": reason,
            "publishTime": item.publish_time,
            "lastDeliveryAttemptTime": item.last_attempt or utc_iso(),
            "deadLetterTime": utc_iso(),
        }
        sub.dead_letters.append({"event": item.event, "deadLetterProperties": properties})
        if sub.dead_letter_topic:
            self.create_topic(sub.dead_letter_topic)
            for target in self.topics[sub.dead_letter_topic].values():
                if target.matches(item.event):
                    target.ready.append(Stored(item.event, utc_iso(), dead_letter=properties))
                    target.wake()


def _token_failure(
    token: str, message: str = "lock token is unknown, settled or expired"
) -> dict[str, Any]:
    return {"lockToken": token, "error": {"code": "TokenLost", "message": message}}


def receive_detail(item: Stored) -> dict[str, Any]:
    """The wire form of one received event."""
    broker: dict[str, Any] = {"lockToken": item.lock_token, "deliveryCount": item.delivery_count}
    if item.dead_letter is not None:
        broker["deadLetterProperties"] = item.dead_letter
    return {"brokerProperties": broker, "event": item.event}
