"""One emulated subscription: its backlog, leases, redelivery, ordering and seek.

Every method expects the caller to hold `SubscriptionState.cond` (the
backend does), so a subscription is a plain single-threaded state machine.
Deadlines use the monotonic clock; publish times use the wall clock, because
Seek is given a wall-clock time.

Delivery rules (as Pub/Sub documents them):
- each delivery gets a fresh ack id; acking an older ack id of the same message
  does nothing;
- a nack (modack 0) or an expired lease redelivers, after the subscription's
  retry-policy backoff when it has one;
- with a dead-letter policy, a message whose delivery attempts reached
  max_delivery_attempts is forwarded to the dead-letter topic instead;
- with message ordering, messages of one ordering key go out in publish order
  and a key has one batch in flight at a time; a nack or expiry of one message
  of a key redelivers it and every later outstanding message of that key.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Keep one response under the client's and gRPC's message size comfort zone.
MAX_BATCH_BYTES = 3 * 1024 * 1024
MAX_BATCH_MESSAGES = 1000


class Entry:
    """A message as this subscription tracks it."""

    __slots__ = (
        "ack_id",
        "attempts",
        "deadline",
        "key",
        "msg",
        "publish_ts",
        "seq",
        "size",
        "stream",
    )

    def __init__(self, seq: int, msg: Any, size: int, publish_ts: float, key: str) -> None:
        self.seq = seq
        self.msg = msg  # a google.pubsub.v1.PubsubMessage protobuf, never mutated after publish
        self.size = size
        self.publish_ts = publish_ts
        self.key = key
        self.attempts = 0
        self.ack_id = ""
        self.deadline = 0.0
        self.stream: StreamLimits | None = None


class StreamLimits:
    """Flow control of one streaming pull: what is outstanding on it, and its limits."""

    __slots__ = ("ack_deadline", "closed", "count", "max_bytes", "max_messages", "nbytes")

    def __init__(self, max_messages: int, max_bytes: int, ack_deadline: float) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.ack_deadline = ack_deadline
        self.count = 0
        self.nbytes = 0
        self.closed = False

    def room(self) -> tuple[int, int]:
        """How many more messages and bytes may go out on this stream now."""
        count = self.max_messages - self.count if self.max_messages > 0 else MAX_BATCH_MESSAGES
        nbytes = self.max_bytes - self.nbytes if self.max_bytes > 0 else MAX_BATCH_BYTES
        return count, nbytes


class _Key:
    """Ordering state of one ordering key."""

    __slots__ = ("not_before", "outstanding", "queue", "ready")

    def __init__(self) -> None:
        self.queue: deque[Entry] = deque()
        self.outstanding: dict[str, Entry] = {}
        self.not_before = 0.0
        self.ready = False


@dataclass(frozen=True)
class DeliveryRules:
    """The subscription settings that shape delivery."""

    ack_deadline: float = 10.0
    ordered: bool = False
    max_delivery_attempts: int = 0  # 0: no dead-letter policy
    dead_letter_topic: str = ""
    min_backoff: float = -1.0  # < 0: no retry policy, redeliver at once
    max_backoff: float = 600.0
    retention: float = 7 * 24 * 3600.0
    retain_acked: bool = False
    exactly_once: bool = False  # acks and modacks of invalid ack ids are reported, not ignored

    def backoff(self, attempts: int) -> float:
        """Seconds before redelivering a message that failed `attempts` times."""
        if self.min_backoff < 0:
            return 0.0
        return min(self.max_backoff, self.min_backoff * 2 ** max(0, attempts - 1))


Delivered = tuple[str, Any, int]  # ack id, message, delivery attempt


class SubscriptionState:
    """Backlog and leases of one subscription; guard every call with `cond`."""

    def __init__(
        self,
        name: str,
        topic: str,
        rules: DeliveryRules,
        matches: Callable[[Mapping[str, str]], bool],
        config: Any,
    ) -> None:
        self.name = name
        self.topic = topic
        self.rules = rules
        self.matches = matches
        self.config = config  # the Subscription protobuf as created (GetSubscription returns it)
        self.cond = threading.Condition()
        self.deleted = False
        self._seq = itertools.count()
        self._ack_ids = itertools.count(1)
        self._ticks = itertools.count()
        self._pending: deque[Entry] = deque()
        self._keys: dict[str, _Key] = {}
        self._ready_keys: deque[str] = deque()
        self._delayed: list[tuple[float, int, Entry | str]] = []
        self._outstanding: dict[str, Entry] = {}
        self._deadlines: list[tuple[float, int, str]] = []
        self._log: OrderedDict[str, Entry] = OrderedDict()
        self._dead: list[Entry] = []
        self._last_prune = 0.0

    # -- intake ---------------------------------------------------------------

    def enqueue(self, messages: Iterable[tuple[Any, int]], publish_ts: float) -> None:
        """Add published messages (protobuf, byte size) that pass the filter."""
        ordered = self.rules.ordered
        added = False
        for msg, size in messages:
            attributes = msg.attributes
            if not self.matches(attributes):
                continue  # Pub/Sub acknowledges non-matching messages on its own
            key = msg.ordering_key if ordered else ""
            entry = Entry(next(self._seq), msg, size, publish_ts, key)
            self._log[msg.message_id] = entry
            self._make_available(entry)
            added = True
        if added:
            self.cond.notify_all()

    def _make_available(self, entry: Entry) -> None:
        if not entry.key:
            self._pending.append(entry)
            return
        state = self._keys.get(entry.key)
        if state is None:
            state = self._keys[entry.key] = _Key()
        state.queue.append(entry)
        self._mark_ready(entry.key, state)

    def _mark_ready(self, key: str, state: _Key) -> None:
        if not state.ready and not state.outstanding and state.queue:
            state.ready = True
            self._ready_keys.append(key)

    # -- delivery ---------------------------------------------------------------

    def take(
        self, now: float, wall: float, max_messages: int, stream: StreamLimits | None = None
    ) -> list[Delivered]:
        """Lease up to `max_messages` available messages (within `stream`'s flow control)."""
        self.maintain(now, wall)
        room_count, room_bytes = stream.room() if stream else (MAX_BATCH_MESSAGES, MAX_BATCH_BYTES)
        limit = min(max_messages, room_count, MAX_BATCH_MESSAGES)
        budget = min(room_bytes, MAX_BATCH_BYTES)
        out: list[Delivered] = []
        deadline = now + (stream.ack_deadline if stream else self.rules.ack_deadline)
        cutoff = wall - self.rules.retention
        pending = self._pending
        while len(out) < limit and pending:
            entry = pending[0]
            if out and entry.size > budget:
                break
            pending.popleft()
            if entry.publish_ts < cutoff:
                continue  # past retention: expired, never delivered
            budget -= entry.size
            out.append(self._lease(entry, deadline, stream))
        while len(out) < limit and self._ready_keys and budget > 0:
            key = self._ready_keys.popleft()
            state = self._keys[key]
            state.ready = False
            if state.not_before > now:
                heapq.heappush(self._delayed, (state.not_before, next(self._ticks), key))
                continue
            while state.queue and len(out) < limit:
                entry = state.queue[0]
                if out and entry.size > budget:
                    break
                state.queue.popleft()
                budget -= entry.size
                out.append(self._lease(entry, deadline, stream))
                state.outstanding[entry.ack_id] = entry
            if not state.outstanding:
                self._mark_ready(key, state)
        return out

    def _lease(self, entry: Entry, deadline: float, stream: StreamLimits | None) -> Delivered:
        ack_id = f"{self.name.rsplit('/', 1)[-1]}:{next(self._ack_ids)}"
        entry.ack_id = ack_id
        entry.attempts += 1
        entry.deadline = deadline
        entry.stream = stream
        if stream is not None:
            stream.count += 1
            stream.nbytes += entry.size
        self._outstanding[ack_id] = entry
        heapq.heappush(self._deadlines, (deadline, next(self._ticks), ack_id))
        attempt = entry.attempts if self.rules.max_delivery_attempts else 0
        return ack_id, entry.msg, attempt

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until the next lease expiry or delayed redelivery, if any."""
        times = []
        if self._deadlines:
            times.append(self._deadlines[0][0])
        if self._delayed:
            times.append(self._delayed[0][0])
        return max(0.0, min(times) - now) if times else None

    def has_available(self) -> bool:
        """Whether a take() could return something right now (before maintenance)."""
        return bool(self._pending or self._ready_keys)

    # -- settlement -------------------------------------------------------------

    def ack(self, ack_ids: Iterable[str]) -> list[str]:
        """Acknowledge: never deliver these messages again; the ack ids that were not valid.

        An ack id is valid while its lease lasts. Pub/Sub ignores invalid ones,
        except with exactly-once delivery, where the caller reports them.
        """
        freed = False
        invalid: list[str] = []
        for ack_id in ack_ids:
            entry = self._outstanding.pop(ack_id, None)
            if entry is None:
                invalid.append(ack_id)
                continue
            freed = self._release(entry) or freed
            if not self.rules.retain_acked:
                self._log.pop(entry.msg.message_id, None)
        if freed:
            self.cond.notify_all()
        return invalid

    def modify(self, ack_ids: Iterable[str], seconds: int, now: float) -> list[str]:
        """Set the lease of these messages to `seconds` from now (0 is a nack); the invalid ids."""
        invalid: list[str] = []
        if seconds == 0:
            for ack_id in ack_ids:
                entry = self._outstanding.get(ack_id)
                if entry is not None:
                    self._redeliver(entry, now)
                else:
                    invalid.append(ack_id)
            self.cond.notify_all()
            return invalid
        deadline = now + seconds
        earliest = self._deadlines[0][0] if self._deadlines else float("inf")
        for ack_id in ack_ids:
            entry = self._outstanding.get(ack_id)
            if entry is not None:
                entry.deadline = deadline
                heapq.heappush(self._deadlines, (deadline, next(self._ticks), ack_id))
            else:
                invalid.append(ack_id)
        if deadline < earliest:
            self.cond.notify_all()  # waiters sleep until the old earliest deadline: wake them
        return invalid

    def _release(self, entry: Entry) -> bool:
        """Forget an outstanding entry's lease; True when flow control or a key freed up."""
        freed = False
        stream = entry.stream
        if stream is not None:
            stream.count -= 1
            stream.nbytes -= entry.size
            entry.stream = None
            freed = True
        if entry.key:
            state = self._keys[entry.key]
            state.outstanding.pop(entry.ack_id, None)
            if not state.outstanding:
                if state.queue:
                    self._mark_ready(entry.key, state)
                    freed = True
                elif not state.ready:
                    del self._keys[entry.key]
        entry.ack_id = ""
        return freed

    def _redeliver(self, entry: Entry, now: float) -> None:
        """Put a nacked or expired entry back (or dead-letter it)."""
        rules = self.rules
        if entry.key:
            state = self._keys[entry.key]
            siblings = sorted(state.outstanding.values(), key=lambda e: e.seq)
            for sibling in siblings:
                self._outstanding.pop(sibling.ack_id, None)
                state.outstanding.pop(sibling.ack_id, None)
                if sibling.stream is not None:
                    sibling.stream.count -= 1
                    sibling.stream.nbytes -= sibling.size
                    sibling.stream = None
                sibling.ack_id = ""
            back = [s for s in siblings if not (s is entry and self._exhausted(s))]
            if len(back) != len(siblings):
                self._dead.append(entry)
            state.queue.extendleft(reversed(back))
            state.not_before = now + rules.backoff(entry.attempts)
            self._mark_ready(entry.key, state)
            return
        self._outstanding.pop(entry.ack_id, None)
        self._release(entry)
        if self._exhausted(entry):
            self._dead.append(entry)
            return
        delay = rules.backoff(entry.attempts)
        if delay > 0:
            heapq.heappush(self._delayed, (now + delay, next(self._ticks), entry))
        else:
            self._pending.append(entry)

    def _exhausted(self, entry: Entry) -> bool:
        limit = self.rules.max_delivery_attempts
        return bool(limit and self.rules.dead_letter_topic and entry.attempts >= limit)

    def take_dead_letters(self) -> list[Entry]:
        """Entries to forward to the dead-letter topic (the backend publishes them)."""
        dead, self._dead = self._dead, []
        for entry in dead:
            self._log.pop(entry.msg.message_id, None)
        return dead

    # -- time -------------------------------------------------------------------

    def maintain(self, now: float, wall: float) -> None:
        """Expire leases and release delayed redeliveries that are due."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, ack_id = heapq.heappop(deadlines)
            entry = self._outstanding.get(ack_id)
            if entry is not None and entry.deadline <= now:
                self._redeliver(entry, now)
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, item = heapq.heappop(delayed)
            if isinstance(item, Entry):
                self._pending.append(item)
            else:
                state = self._keys.get(item)
                if state is not None:
                    self._mark_ready(item, state)
        if wall - self._last_prune > 1.0:
            self._last_prune = wall
            cutoff = wall - self.rules.retention
            log = self._log
            while log and next(iter(log.values())).publish_ts < cutoff:
                log.popitem(last=False)

    # -- seek -------------------------------------------------------------------

    def seek(self, wall_time: float) -> None:
        """Mark messages published before `wall_time` acknowledged and later ones not."""
        self._reset()
        for message_id, entry in list(self._log.items()):
            if entry.publish_ts < wall_time:
                if not self.rules.retain_acked:
                    del self._log[message_id]
                continue
            self._make_available(entry)
        self.cond.notify_all()

    def unacked(self) -> list[tuple[Any, int, float]]:
        """Every message not yet acknowledged (message, size, publish time), in publish order."""
        entries = sorted(
            [
                *self._pending,
                *(entry for key in self._keys.values() for entry in key.queue),
                *(item[2] for item in self._delayed if isinstance(item[2], Entry)),
                *self._outstanding.values(),
            ],
            key=lambda e: e.seq,
        )
        return [(e.msg, e.size, e.publish_ts) for e in entries]

    def seek_to(self, messages: Iterable[tuple[Any, int, float]]) -> None:
        """Seek to a snapshot: exactly `messages` (that pass the filter) are unacknowledged."""
        self._reset()
        if not self.rules.retain_acked:
            self._log.clear()
        for msg, size, publish_ts in messages:
            if not self.matches(msg.attributes):
                continue
            key = msg.ordering_key if self.rules.ordered else ""
            entry = Entry(next(self._seq), msg, size, publish_ts, key)
            self._log[msg.message_id] = entry
            self._make_available(entry)
        self.cond.notify_all()

    def _reset(self) -> None:
        """Forget every lease, queue and delayed redelivery (the first step of a seek)."""
        for entry in self._outstanding.values():
            if entry.stream is not None:
                entry.stream.count -= 1
                entry.stream.nbytes -= entry.size
                entry.stream = None
            entry.ack_id = ""
        self._pending.clear()
        self._keys.clear()
        self._ready_keys.clear()
        self._delayed.clear()
        self._outstanding.clear()
        self._deadlines.clear()

    def backlog(self) -> dict[str, float | int | None]:
        """Waiting (available or delayed), outstanding, and the oldest unacked publish time."""
        entries = [
            *self._pending,
            *(entry for key in self._keys.values() for entry in key.queue),
            *(item[2] for item in self._delayed if isinstance(item[2], Entry)),
            *self._outstanding.values(),
        ]
        outstanding = len(self._outstanding)
        return {
            "undelivered": len(entries) - outstanding,
            "in_flight": outstanding,
            "oldest_publish": min((e.publish_ts for e in entries), default=None),
        }

    def counts(self) -> dict[str, int]:
        """Backlog figures, for tests and the emulator's status line."""
        keyed = sum(len(s.queue) for s in self._keys.values())
        return {
            "available": len(self._pending) + keyed,
            "delayed": sum(1 for item in self._delayed if isinstance(item[2], Entry)),
            "outstanding": len(self._outstanding),
            "retained": len(self._log),
        }
