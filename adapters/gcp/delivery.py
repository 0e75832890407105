"""Receiving: a unary-Pull consumer per subscription, and the deliveries it hands out.

A lease starts only when `receive()` asks for it. Each `take(n)` is one
unary Pull for at most `n` messages (and never more than
``max_outstanding_messages`` unsettled at once), so nothing waits leased in
a local buffer: the runtime asks for as many deliveries as it has free
handler slots, and every message it gets is being handled. The client's
streaming pull is not used on purpose: it prefetches up to its flow-control
limit and keeps extending the leases of everything it holds, so one hung
handler kept a whole prefetched batch leased (and invisible to every other
consumer) for as long as the process lived.

Leases are Pub/Sub's: the subscription's ack deadline from the Pull, then
`extend(seconds)` (modifyAckDeadline) while a handler works. ack =
Acknowledge; nack = modifyAckDeadline 0 (or `delay` seconds); dead_letter =
publish a copy to the dead-letter topic with the reason, then Acknowledge.

A message that cannot be decoded (bad attribute, deep nesting, invalid UTF-8,
anything the decoder raises) is dead-lettered alone, with its reason and its
data and attributes unchanged, and never handed out. Reading the dead-letter
subscription never drops or raises on such a message: it comes back as an
``polybus.undecodable`` event whose data is the raw message data, with the
reason in its ``polybusreason`` extension and `.reason`. close() returns the ack ids of everything leased but not
settled, which the adapter nacks in one call.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from google.api_core.exceptions import DeadlineExceeded

from polybus.adapters.gcp.errors import translate_errors
from polybus.adapters.gcp.mapping import from_message
from polybus.core.contract import Delivery
from polybus.core.errors import AdapterError

log = logging.getLogger("polybus.gcp")
DeadLetter = Callable[[Any, str, int], None]  # (PubsubMessage, reason, attempt)
REASON_ATTRIBUTE = "polybus-dead-letter-reason"
UNDECODABLE_TYPE = "polybus.undecodable"  # the stand-in convention azure uses too
REASON_EXTENSION = "polybusreason"
MAX_LEASE_SECONDS = 600  # modifyAckDeadline's upper bound
MIN_PULL_DEADLINE = 0.2  # a Pull shorter than this mostly measures the round trip
SETTLE_TIMEOUT = 10.0  # seconds one ack / modack call may take, retries included
ACK_FLUSH_SECONDS = 0.05  # queued acks are sent at least this often
ACK_BATCH = 1000  # ack ids per Acknowledge call (Pub/Sub's streaming client uses 2,500)


class PullConsumer:
    """Leases messages of one subscription with unary Pull and settles them by ack id."""

    def __init__(
        self, subscriber: Any, path: str, max_outstanding: int, max_outstanding_bytes: int
    ) -> None:
        self.path = path
        self._subscriber = subscriber
        self._max_outstanding = max_outstanding
        self._max_bytes = max_outstanding_bytes
        self._lock = threading.Lock()
        self._unsettled: dict[str, int] = {}  # ack id -> message size
        self.closed = False
        # Acks are batched, as the streaming client batches them: ack() queues the
        # id, a flusher sends one Acknowledge per ACK_FLUSH_SECONDS (or per full
        # batch), close() sends what is left. A lost ack means a redelivery, never
        # a loss: at least once holds.
        self._acks: list[str] = []
        self._acks_ready = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None

    def take(self, max_messages: int, timeout: float) -> list[Any]:
        """Lease up to `max_messages` ReceivedMessages, waiting at most `timeout` for the first."""
        with self._lock:
            self._check_open()
            room = min(max_messages, self._max_outstanding - len(self._unsettled))
            if sum(self._unsettled.values()) >= self._max_bytes:
                room = 0
        if room <= 0:
            return []
        with translate_errors(f"pull from {self.path}"):
            try:
                response = self._subscriber.pull(
                    request={"subscription": self.path, "max_messages": room},
                    timeout=max(MIN_PULL_DEADLINE, timeout),
                    retry=None,  # the runtime retries with its own backoff; a call stays bounded
                )
            except DeadlineExceeded:  # nothing arrived within the timeout
                return []
        received = list(response.received_messages)
        with self._lock:
            if self.closed:  # closed while pulling: give them straight back
                leftover = [r.ack_id for r in received]
                received = []
            else:
                leftover = []
                for item in received:
                    self._unsettled[item.ack_id] = len(item.message.data)
        if leftover:
            self.modify(leftover, 0)
        return received

    def claim(self, ack_id: str) -> None:
        """Mark a leased message settled (it is being acked, nacked or dead-lettered)."""
        with self._lock:
            self._check_open()
            if self._unsettled.pop(ack_id, None) is None:
                raise AdapterError("gcp: delivery already settled")

    def check_leased(self, ack_id: str) -> None:
        """Raise unless the message is leased here and not settled (for extend)."""
        with self._lock:
            self._check_open()
            if ack_id not in self._unsettled:
                raise AdapterError("gcp: delivery already settled")

    def ack(self, ack_ids: list[str]) -> None:
        """Acknowledge messages for good, now (one Acknowledge call)."""
        with translate_errors(f"acknowledge on {self.path}"):
            self._subscriber.acknowledge(
                request={"subscription": self.path, "ack_ids": ack_ids}, timeout=SETTLE_TIMEOUT
            )

    def queue_ack(self, ack_id: str) -> None:
        """Acknowledge within ACK_FLUSH_SECONDS, batched with other acks."""
        with self._lock:
            self._acks.append(ack_id)
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name=f"polybus-gcp-acks-{self.path}", daemon=True
                )
                self._flusher.start()
            if len(self._acks) >= ACK_BATCH:
                self._acks_ready.notify()

    def flush_acks(self) -> None:
        """Send every queued ack now (close calls this)."""
        with self._lock:
            batch, self._acks = self._acks, []
        for start in range(0, len(batch), ACK_BATCH):
            try:
                self.ack(batch[start : start + ACK_BATCH])
            except AdapterError:  # leases run out and the events come back: at least once
                log.warning(
                    "gcp: %d ack(s) on %s failed; they will be redelivered", len(batch), self.path
                )

    def _flush_loop(self) -> None:
        while True:
            with self._lock:
                if not self._acks and not self.closed:
                    self._acks_ready.wait(ACK_FLUSH_SECONDS)
                if self.closed and not self._acks:
                    return
            self.flush_acks()
            with self._lock:
                if self.closed and not self._acks:
                    return
                self._acks_ready.wait(ACK_FLUSH_SECONDS)  # pace: one call per interval

    def modify(self, ack_ids: list[str], seconds: int) -> None:
        """Set the messages' leases to end `seconds` from now (0: redeliver at once)."""
        with translate_errors(f"modify ack deadline on {self.path}"):
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": self.path,
                    "ack_ids": ack_ids,
                    "ack_deadline_seconds": max(0, min(MAX_LEASE_SECONDS, seconds)),
                },
                timeout=SETTLE_TIMEOUT,
            )

    def close(self) -> list[str]:
        """Stop leasing; the ack ids of messages leased but never settled."""
        with self._lock:
            if self.closed:
                return []
            self.closed = True
            leftover = list(self._unsettled)
            self._unsettled.clear()
            self._acks_ready.notify_all()
        self.flush_acks()
        return leftover

    def _check_open(self) -> None:
        if self.closed:
            raise AdapterError(f"gcp: {self.path} consumer is closed; the delivery was released")


class GcpDelivery:
    """One received event; settle it once with ack, nack or dead_letter."""

    __slots__ = ("_consumer", "_dead_letter", "_event", "_exhausted_at", "_received", "attempt")

    def __init__(
        self,
        consumer: PullConsumer,
        received: Any,
        event: CloudEvent,
        dead_letter: DeadLetter | None,
        exhausted_at: int | None,
    ) -> None:
        self._consumer = consumer
        self._received = received
        self._event = event
        self._dead_letter = dead_letter
        self._exhausted_at = exhausted_at
        self.attempt: int = received.delivery_attempt or 1

    @property
    def event(self) -> CloudEvent:
        """The delivered event."""
        return self._event

    @property
    def reason(self) -> str | None:
        """Why a dead letter was dead-lettered (None for live deliveries)."""
        if self._dead_letter is not None:
            return None
        attributes = self._received.message.attributes
        return str(attributes.get(REASON_ATTRIBUTE, "")) or (
            "Pub/Sub's dead-letter policy: max_delivery_attempts reached"
        )

    @property
    def raw(self) -> bytes:
        """The message data exactly as received."""
        return bytes(self._received.message.data)

    @property
    def ack_id(self) -> str:
        """Pub/Sub's ack id of this delivery."""
        return str(self._received.ack_id)

    def ack(self) -> None:
        """Done: the message is acknowledged."""
        self._consumer.claim(self.ack_id)
        self._consumer.queue_ack(self.ack_id)

    def extend(self, seconds: float) -> None:
        """Keep the lease for `seconds` more from now (modifyAckDeadline, whole seconds, <= 600)."""
        self._consumer.check_leased(self.ack_id)
        self._consumer.modify([self.ack_id], max(1, math.ceil(seconds)))

    def nack(self, delay: float = 0.0) -> None:
        """Redeliver after `delay` s (whole seconds, Pub/Sub's unit), or dead-letter when used up.

        Below one second the lease ends at once and the subscription's retry
        policy paces the redelivery; otherwise the lease is set to end in
        `delay` seconds (at most 600).
        """
        if self._exhausted_at is not None and self.attempt >= self._exhausted_at:
            self.dead_letter(f"nacked on attempt {self.attempt} of {self._exhausted_at}")
            return
        self._consumer.claim(self.ack_id)
        self._consumer.modify([self.ack_id], 0 if delay < 1.0 else round(delay))

    def dead_letter(self, reason: str) -> None:
        """Publish the message to the dead-letter topic with `reason`, then ack it here."""
        if self._dead_letter is None:
            raise AdapterError("gcp: this delivery came from a dead-letter subscription already")
        self._consumer.claim(self.ack_id)
        try:
            self._dead_letter(self._received.message, reason, self.attempt)
        except BaseException:
            self._consumer.modify([self.ack_id], 0)  # not forwarded: keep it rather than lose it
            raise
        self._consumer.ack([self.ack_id])


def undecodable_event(received: Any, subscription: str, reason: str) -> CloudEvent:
    """A stand-in event for a message that is no CloudEvent: its raw data, named by message id."""
    message = received.message
    return CloudEvent(
        {
            "id": message.message_id or received.ack_id[:64] or "unknown",
            "source": f"/polybus/gcp/{subscription.rsplit('/', 1)[-1]}",
            "type": UNDECODABLE_TYPE,
            "datacontenttype": "application/octet-stream",
            REASON_EXTENSION: reason[:2000],
        },
        bytes(message.data),
    )


def decode(received: Any) -> CloudEvent:
    """The CloudEvent in a received message; raises whatever the decoder raises."""
    message = received.message
    return from_message(bytes(message.data), dict(message.attributes))


def poison_reason(exc: BaseException) -> str:
    """The dead-letter reason of a message that failed to decode."""
    detail = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
    return f"not a CloudEvent: {type(exc).__name__}: {detail}"[:1000]


def deliveries(
    consumer: PullConsumer,
    received: list[Any],
    dead_letter: DeadLetter | None,
    exhausted_at: int | None,
) -> list[Delivery]:
    """Decode received messages into deliveries; dead-letter what cannot or must not be delivered.

    A message that fails to decode, for whatever reason, is dead-lettered
    alone with the reason (the others are unaffected). From a dead-letter
    subscription (`dead_letter` None) it is handed out as an unreadable
    event instead: it cannot go anywhere else and must not be lost. A
    message whose attempt is past `exhausted_at` (its lease expired on the
    last allowed attempt) is dead-lettered instead of delivered again.
    """
    out: list[Delivery] = []
    for item in received:
        try:
            event = decode(item)
        except Exception as exc:  # any decoder failure makes this one message poison
            reason = poison_reason(exc)
            if dead_letter is None:  # a dead letter already: carry why it was dead-lettered
                reason = str(item.message.attributes.get(REASON_ATTRIBUTE, "")) or reason
            event = undecodable_event(item, consumer.path, reason)
            stand_in = GcpDelivery(consumer, item, event, dead_letter, None)
            if dead_letter is None:
                out.append(stand_in)
            else:
                _dead_letter_or_release(stand_in, reason)
            continue
        delivery = GcpDelivery(consumer, item, event, dead_letter, exhausted_at)
        if exhausted_at is not None and delivery.attempt > exhausted_at:
            _dead_letter_or_release(
                delivery,
                f"delivery attempt {delivery.attempt} is past the {exhausted_at} allowed"
                " (a lease ran out on the last attempt)",
            )
            continue
        out.append(delivery)
    return out


def _dead_letter_or_release(delivery: GcpDelivery, reason: str) -> None:
    """Dead-letter one message; when that fails it is released (Pub/Sub's policy takes it later)."""
    try:
        delivery.dead_letter(reason)
    except AdapterError:
        log.warning("gcp: could not dead-letter %s (%s); released", delivery.ack_id, reason)
