"""The embedded in-memory bus: topics, subscriptions and per-subscription queues.

Each subscription has a ready queue, a heap of delayed redeliveries, a table of
in-flight deliveries with their lease deadlines, and a dead-letter queue.
Competing consumers share a subscription; at-least-once delivery: a delivery
not settled before its lease ends becomes visible again, and a lease that ends
on the last allowed attempt dead-letters the event. `extend` renews a lease.
A delivery whose lease the bus took back is stale: settling or extending it
does nothing, so attempts are counted once per delivery. With `ordered`,
events with the same ``partitionkey`` are delivered one at a time, in order.
Each subscription holds at most `max_pending` events (ready, delayed or in
flight): a publisher waits up to `publish_timeout` for room, then gets an
AdapterError. A bounded log per topic serves replay from a point in time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent

from polybus.core.contract import BacklogStats, SubscriptionSpec
from polybus.core.errors import AdapterError
from polybus.core.events import AttributeView
from polybus.core.filters.dialects import Filter, Predicate, compile_filter

DEFAULT_RETENTION = 100_000
DEFAULT_MAX_PENDING = 100_000
DEFAULT_PUBLISH_TIMEOUT = 10.0


@dataclass(eq=False)
class _Entry:
    event: CloudEvent
    key: str | None
    attempts: int = 0
    published: float = field(default_factory=time.time)  # wall clock, for the oldest age


@dataclass(eq=False)
class _Queue:
    spec: SubscriptionSpec
    match: Predicate | None
    ready: deque[_Entry] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Entry]] = field(default_factory=list)
    inflight: dict[int, tuple[_Entry, float]] = field(default_factory=dict)
    deadlines: list[tuple[float, int]] = field(default_factory=list)
    dead: deque[tuple[_Entry, str]] = field(default_factory=deque)
    dead_out: dict[int, tuple[_Entry, str]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)

    def pending(self) -> int:
        """Events this subscription holds for its consumers: ready, delayed or in flight."""
        return len(self.ready) + len(self.delayed) + len(self.inflight)


class MemoryDelivery:
    """A delivery from the in-memory bus; `token` < 0 marks one read from the dead-letter queue."""

    __slots__ = ("_bus", "_queue", "_token", "attempt", "event")

    def __init__(self, bus: MemoryBus, queue: _Queue, token: int, entry: _Entry) -> None:
        self._bus = bus
        self._queue = queue
        self._token = token
        self.event = entry.event
        self.attempt = entry.attempts

    def ack(self) -> None:
        """Remove the event for good."""
        self._bus._settle(self._queue, self._token, None, None)

    def nack(self, delay: float = 0.0) -> None:
        """Redeliver after `delay` seconds, or dead-letter when attempts are used up."""
        self._bus._settle(self._queue, self._token, max(0.0, delay), None)

    def dead_letter(self, reason: str) -> None:
        """Move to the dead-letter queue now."""
        self._bus._settle(self._queue, self._token, None, reason)

    def extend(self, seconds: float) -> None:
        """Keep the event invisible for `seconds` more from now; a stale delivery stays stale."""
        self._bus._extend(self._queue, self._token, seconds)


class MemoryBus:
    """The in-memory implementation of the adapter contract (provider name ``local``)."""

    name = "local"

    def __init__(
        self,
        retention: int = DEFAULT_RETENTION,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    ) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)  # publishers waiting for queue space
        self._waiting_publishers = 0
        self._queues: dict[str, _Queue] = {}
        self._by_topic: dict[str, list[_Queue]] = {}
        self._log: dict[str, deque[tuple[float, CloudEvent]]] = {}
        self._retention = retention
        self.max_pending = max_pending
        self.publish_timeout = publish_timeout
        self._tokens = itertools.count(1)
        self._seq = itertools.count()

    # contract ---------------------------------------------------------------

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Append to the topic's log and to every matching subscription's queue.

        Waits up to `publish_timeout` while a matching subscription has no room
        for the batch, then raises AdapterError naming it and the bound.
        """
        if not events:
            return
        deadline = time.monotonic() + self.publish_timeout
        with self._cond:
            while True:
                targets = self._targets(topic, events)
                full = self._full(targets)
                if full is None:
                    break
                remaining = deadline - time.monotonic()
                share = len(targets[full])
                if share > self.max_pending:
                    raise AdapterError(
                        f"local: a batch of {share} events for subscription {full.spec.name!r} "
                        f"can never fit its bound (max_pending={self.max_pending}): publish "
                        "smaller batches or raise [local] max_pending"
                    )
                if remaining <= 0:
                    raise AdapterError(
                        f"local: subscription {full.spec.name!r} is full ({full.pending()} "
                        f"pending events, max_pending={self.max_pending}); waited "
                        f"{self.publish_timeout:g} s (publish_timeout) for its consumers to make "
                        f"room for {share} more"
                    )
                self._waiting_publishers += 1
                try:
                    self._room.wait(remaining)
                finally:
                    self._waiting_publishers -= 1
            now = time.time()
            log = self._log.get(topic)
            if log is None:
                log = self._log[topic] = deque(maxlen=self._retention)
            log.extend((now, event) for event in events)
            for queue, entries in targets.items():
                queue.ready.extend(entries)
            if targets:
                self._cond.notify_all()

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update a subscription; the local bus evaluates every filter itself."""
        match = compile_filter(spec.filter) if spec.filter is not None else None
        with self._cond:
            queue = self._queues.get(spec.name)
            if queue is None:
                queue = self._queues[spec.name] = _Queue(spec, match)
                self._by_topic.setdefault(spec.topic, []).append(queue)
            else:
                if queue.spec.topic != spec.topic:
                    self._by_topic[queue.spec.topic].remove(queue)
                    self._by_topic.setdefault(spec.topic, []).append(queue)
                queue.spec, queue.match = spec, match
        return None

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[MemoryDelivery]:
        """Take up to `max_events` visible events, waiting up to `timeout` for the first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            queue = self._queue(subscription)
            while True:
                now = time.monotonic()
                wake = self._promote(queue, now)
                taken = self._take(queue, max_events, now)
                if taken:
                    return taken
                remaining = deadline - now
                if remaining <= 0:
                    return []
                self._cond.wait(min(remaining, wake - now) if wake else remaining)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[MemoryDelivery]:
        """Dead-lettered events; ack removes them, nack leaves them dead-lettered."""
        with self._cond:
            queue = self._queue(subscription)
            self._promote(queue, time.monotonic())
            out: list[MemoryDelivery] = []
            while queue.dead and len(out) < max_events:
                entry, reason = queue.dead.popleft()
                token = next(self._tokens)
                queue.dead_out[token] = (entry, reason)  # handed back with its reason
                out.append(MemoryDelivery(self, queue, -token, entry))
            return out

    def dead_letter_reasons(self, subscription: str) -> list[str]:
        """Why each dead-lettered event of the subscription was dead-lettered."""
        with self._cond:
            queue = self._queue(subscription)
            self._promote(queue, time.monotonic())
            return [reason for _entry, reason in queue.dead]

    def delete_subscription(self, subscription: str) -> None:
        """Forget the subscription and its queues."""
        with self._cond:
            queue = self._queues.pop(subscription, None)
            if queue is not None:
                self._by_topic[queue.spec.topic].remove(queue)
                self._room.notify_all()

    def replay(self, subscription: str, since: datetime) -> None:
        """Queue again every retained event of the topic published at or after `since`.

        Replay is an explicit request, so it is not held back by `max_pending`.
        """
        cutoff = since.timestamp()
        with self._cond:
            queue = self._queue(subscription)
            for published, event in self._log.get(queue.spec.topic, ()):
                if published >= cutoff and (
                    queue.match is None or queue.match(AttributeView(event))
                ):
                    queue.ready.append(_Entry(event, self._key(queue, event)))
            self._cond.notify_all()

    def close(self) -> None:
        """Nothing to release; in-flight events are lost with the process (use durable mode)."""
        with self._cond:
            self._cond.notify_all()
            self._room.notify_all()

    def backlog(self, subscription: str) -> int:
        """Events waiting or in flight for the subscription."""
        with self._cond:
            return self._queue(subscription).pending()

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """Waiting (ready or delayed), in flight, oldest unacked age and dead letters, now."""
        with self._cond:
            queue = self._queue(subscription)
            self._promote(queue, time.monotonic())
            entries = [
                *queue.ready,
                *(entry for _, _, entry in queue.delayed),
                *(entry for entry, _ in queue.inflight.values()),
            ]
            oldest = min((entry.published for entry in entries), default=None)
            return BacklogStats(
                subscription,
                undelivered=len(queue.ready) + len(queue.delayed),
                in_flight=len(queue.inflight),
                oldest_age=None if oldest is None else max(0.0, time.time() - oldest),
                dead_letters=len(queue.dead) + len(queue.dead_out),
            )

    def subscriptions(self) -> list[str]:
        """The names of the subscriptions this bus holds."""
        with self._cond:
            return sorted(self._queues)

    # internals --------------------------------------------------------------

    def _queue(self, subscription: str) -> _Queue:
        try:
            return self._queues[subscription]
        except KeyError:
            raise KeyError(f"no subscription named {subscription!r}") from None

    def _targets(self, topic: str, events: Sequence[CloudEvent]) -> dict[_Queue, list[_Entry]]:
        """The entries each subscription of `topic` gets from `events` (its filter applied)."""
        queues = self._by_topic.get(topic, ())
        filtered = any(q.match is not None for q in queues)
        targets: dict[_Queue, list[_Entry]] = {q: [] for q in queues}
        for event in events:
            attrs = AttributeView(event) if filtered else None
            for queue in queues:
                if queue.match is None or queue.match(attrs):  # type: ignore[arg-type]
                    targets[queue].append(_Entry(event, self._key(queue, event)))
        return {q: entries for q, entries in targets.items() if entries}

    def _full(self, targets: dict[_Queue, list[_Entry]]) -> _Queue | None:
        """The first subscription without room for its share of the batch, if any."""
        for queue, entries in targets.items():
            if queue.pending() + len(entries) > self.max_pending:
                return queue
        return None

    @staticmethod
    def _key(queue: _Queue, event: CloudEvent) -> str | None:
        if not queue.spec.policy.ordered:
            return None
        key = event.get_attributes().get("partitionkey")
        return None if key is None else str(key)

    def _promote(self, queue: _Queue, now: float) -> float | None:
        """Take back expired leases and move due redeliveries to ready; return the next wake-up.

        A lease that ends on the last allowed attempt dead-letters the event, as
        Pub/Sub and SQS count an expired lease as a failed delivery.
        """
        while queue.deadlines and queue.deadlines[0][0] <= now:
            due, token = heapq.heappop(queue.deadlines)
            held = queue.inflight.get(token)
            if held is None:
                continue  # settled already
            if held[1] > due:  # extended: wait for the new deadline
                heapq.heappush(queue.deadlines, (held[1], token))
                continue
            del queue.inflight[token]
            entry = held[0]
            limit = queue.spec.policy.max_delivery_attempts
            if entry.attempts >= limit:
                queue.dead.append((entry, f"lease expired on the last allowed attempt ({limit})"))
                self._release_key(queue, entry)
                self._make_room()
            else:
                self._requeue(queue, entry)
        while queue.delayed and queue.delayed[0][0] <= now:
            _, _, entry = heapq.heappop(queue.delayed)
            self._requeue(queue, entry)
        times = [
            t
            for t in (
                queue.delayed[:1] and queue.delayed[0][0],
                queue.deadlines[:1] and queue.deadlines[0][0],
            )
            if t
        ]
        return min(times) if times else None

    @staticmethod
    def _requeue(queue: _Queue, entry: _Entry) -> None:
        if entry.key is not None:
            queue.held[entry.key] -= 1
            if not queue.held[entry.key]:
                del queue.held[entry.key]
            queue.ready.appendleft(entry)
        else:
            queue.ready.append(entry)

    def _release_key(self, queue: _Queue, entry: _Entry) -> None:
        if entry.key is not None:  # the key's next event may go now
            queue.held.pop(entry.key, None)
            self._cond.notify_all()

    def _make_room(self) -> None:
        if self._waiting_publishers:
            self._room.notify_all()

    def _take(self, queue: _Queue, max_events: int, now: float) -> list[MemoryDelivery]:
        out: list[MemoryDelivery] = []
        if not queue.ready:
            return out
        lease = now + queue.spec.policy.ack_deadline
        skipped: list[_Entry] = []
        ready = queue.ready
        while ready and len(out) < max_events:
            entry = ready.popleft()
            if entry.key is not None:
                if entry.key in queue.held:
                    skipped.append(entry)
                    continue
                queue.held[entry.key] = 1
            entry.attempts += 1
            token = next(self._tokens)
            queue.inflight[token] = (entry, lease)
            heapq.heappush(queue.deadlines, (lease, token))
            out.append(MemoryDelivery(self, queue, token, entry))
        ready.extendleft(reversed(skipped))
        return out

    def _extend(self, queue: _Queue, token: int, seconds: float) -> None:
        with self._cond:
            held = queue.inflight.get(token) if token > 0 else None
            if held is None:
                return  # settled, or its lease was taken back: nothing to renew
            deadline = time.monotonic() + max(0.0, seconds)
            queue.inflight[token] = (held[0], deadline)
            if deadline < held[1]:  # shortened: the heap must see the earlier time
                heapq.heappush(queue.deadlines, (deadline, token))
                self._cond.notify_all()

    def _settle(self, queue: _Queue, token: int, delay: float | None, reason: str | None) -> None:
        with self._cond:
            if token < 0:  # a dead-letter delivery: ack removes, anything else keeps it
                returned = queue.dead_out.pop(-token, None)
                if returned is not None and delay is not None:
                    queue.dead.append(returned)  # back in the queue with its original reason
                return
            held = queue.inflight.pop(token, None)
            if held is None:
                return  # stale: its lease was taken back, a late settle is ignored
            entry = held[0]
            if reason is None and delay is not None:
                if entry.attempts >= queue.spec.policy.max_delivery_attempts:
                    reason = f"max delivery attempts ({entry.attempts}) reached"
                else:
                    if delay == 0.0:
                        self._requeue_held(queue, entry)
                    else:
                        heapq.heappush(
                            queue.delayed, (time.monotonic() + delay, next(self._seq), entry)
                        )
                    self._cond.notify_all()
                    return
            if reason is not None:
                queue.dead.append((entry, reason))
            self._release_key(queue, entry)
            self._make_room()

    def _requeue_held(self, queue: _Queue, entry: _Entry) -> None:
        if entry.key is not None:
            queue.held[entry.key] = 1  # released by _requeue, which puts it first
        self._requeue(queue, entry)
