"""Receiving: a streaming-pull consumer per subscription, and the deliveries it hands out.

The client's `subscribe()` keeps one StreamingPull open with flow control
(at most N messages / bytes leased at once) and extends the leases of
messages it holds. Its callback only queues a message, so it runs inline on
the client's own thread (`InlineScheduler`) instead of going through a thread
pool per message; `take()` hands queued messages to `receive()`, and
`deliveries()` decodes them. Closing cancels the stream and waits for it (the
client nacks what it had not yet dispatched), then returns the ack ids of
everything queued or handed out but not settled, which the adapter nacks in
one call so nothing waits for a lease to run out.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from google.cloud.pubsub_v1.subscriber.scheduler import Scheduler

from polybus.adapters.gcp.mapping import from_message
from polybus.core.contract import Delivery
from polybus.core.errors import AdapterError, EventValidationError

DeadLetter = Callable[[Any, str, int], None]  # (message, reason, attempt)


class InlineScheduler(Scheduler):
    """Runs each message callback at once on the calling (client) thread.

    Right for callbacks that only enqueue; it keeps ordering-key order
    trivially and saves a thread-pool hand-off per message.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    @property
    def queue(self) -> queue.Queue[Any]:
        """The queue the client uses to send requests back to its dispatcher."""
        return self._queue

    def schedule(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call `callback` now."""
        callback(*args, **kwargs)

    def shutdown(self, await_msg_callbacks: bool = False) -> list[Any]:
        """Nothing is ever pending: no message was left undispatched."""
        return []


class StreamConsumer:
    """Queue of messages from one subscription's streaming pull."""

    def __init__(self, subscriber: Any, path: str, flow_control: Any) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._queue: deque[Any] = deque()
        self._unsettled: dict[str, Any] = {}
        self.closed = False
        self._future = subscriber.subscribe(
            path,
            self._on_message,
            flow_control=flow_control,
            scheduler=InlineScheduler(),
            await_callbacks_on_shutdown=True,
        )

    def _on_message(self, message: Any) -> None:
        with self._cond:
            self._queue.append(message)
            if len(self._queue) == 1:
                self._cond.notify()  # take() only ever waits on an empty queue

    def take(self, max_messages: int, timeout: float) -> list[Any]:
        """Up to `max_messages` queued messages, waiting at most `timeout` for the first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self.closed:
                    return []
                if self._future.done():
                    raise AdapterError(
                        f"gcp: streaming pull on {self.path} ended: {self._future.exception()}"
                    ) from self._future.exception()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(min(remaining, 0.5))
            out: list[Any] = []
            queue = self._queue
            unsettled = self._unsettled
            while queue and len(out) < max_messages:
                message = queue.popleft()
                unsettled[message.ack_id] = message
                out.append(message)
            return out

    def settle(self, message: Any) -> None:
        """Forget a handed-out message (it is being acked, nacked or dead-lettered)."""
        if self.closed:
            raise AdapterError(f"gcp: {self.path} consumer is closed; the delivery was released")
        with self._cond:
            if self._unsettled.pop(message.ack_id, None) is None:
                raise AdapterError("gcp: delivery already settled")

    @property
    def failed(self) -> bool:
        """Whether the stream ended on its own (e.g. the subscription was deleted)."""
        return self._future.done() and not self.closed

    def close(self, timeout: float = 30.0) -> list[str]:
        """Stop the stream; the ack ids of messages queued or handed out but never settled."""
        with self._cond:
            if self.closed:
                return []
            self.closed = True
            self._cond.notify_all()
        self._future.cancel()
        # The stream's own failure (e.g. NotFound) is of no interest any more.
        with contextlib.suppress(Exception):
            self._future.result(timeout=timeout)
        with self._cond:
            leftover = [m.ack_id for m in self._queue] + list(self._unsettled)
            self._queue.clear()
            self._unsettled.clear()
        return leftover


class GcpDelivery:
    """One received event; settle it once with ack, nack or dead_letter."""

    __slots__ = ("_consumer", "_dead_letter", "_event", "_exhausted_at", "_message", "attempt")

    def __init__(
        self,
        consumer: StreamConsumer,
        message: Any,
        event: CloudEvent,
        dead_letter: DeadLetter | None,
        exhausted_at: int | None,
    ) -> None:
        self._consumer = consumer
        self._message = message
        self._event = event
        self._dead_letter = dead_letter
        self._exhausted_at = exhausted_at
        self.attempt: int = message.delivery_attempt or 1

    @property
    def event(self) -> CloudEvent:
        """The delivered event."""
        return self._event

    def ack(self) -> None:
        """Done: the message is acknowledged."""
        self._consumer.settle(self._message)
        self._message.ack()

    def nack(self, delay: float = 0.0) -> None:
        """Redeliver after `delay` s (whole seconds, Pub/Sub's unit), or dead-letter when used up.

        Below one second the message is nacked and the subscription's retry
        policy paces the redelivery; otherwise its lease is set to end in
        `delay` seconds (at most 600).
        """
        if self._exhausted_at is not None and self.attempt >= self._exhausted_at:
            self.dead_letter(f"nacked on attempt {self.attempt} of {self._exhausted_at}")
            return
        self._consumer.settle(self._message)
        if delay < 1.0:
            self._message.nack()
        else:
            self._message.modify_ack_deadline(min(600, round(delay)))
            self._message.drop()

    def dead_letter(self, reason: str) -> None:
        """Publish the message to the dead-letter topic with `reason`, then ack it here."""
        if self._dead_letter is None:
            raise AdapterError("gcp: this delivery came from a dead-letter subscription already")
        self._consumer.settle(self._message)
        try:
            self._dead_letter(self._message, reason, self.attempt)
        except BaseException:
            self._message.nack()  # not forwarded: keep it rather than lose it
            raise
        self._message.ack()


_UNREADABLE = CloudEvent(
    {"id": "unreadable", "source": "/polybus/gcp", "type": "polybus.unreadable"}
)


def deliveries(
    consumer: StreamConsumer,
    messages: list[Any],
    dead_letter: DeadLetter | None,
    exhausted_at: int | None,
) -> list[Delivery]:
    """Decode `messages` into deliveries; dead-letter what cannot or must not be delivered.

    A message that is no CloudEvent is dead-lettered with the reason (acked
    when it came from a dead-letter subscription: it cannot go anywhere
    else). A message whose attempt is past `exhausted_at` (its lease expired
    on the last allowed attempt) is dead-lettered instead of delivered again.
    """
    out: list[Delivery] = []
    for message in messages:
        try:
            event = from_message(message.data, message.attributes)
        except EventValidationError as exc:
            unreadable = GcpDelivery(consumer, message, _UNREADABLE, dead_letter, None)
            if dead_letter is None:
                unreadable.ack()
            else:
                unreadable.dead_letter(f"not a CloudEvent: {exc}")
            continue
        delivery = GcpDelivery(consumer, message, event, dead_letter, exhausted_at)
        if exhausted_at is not None and delivery.attempt > exhausted_at:
            delivery.dead_letter(
                f"delivery attempt {delivery.attempt} is past the {exhausted_at} allowed"
                " (a lease ran out on the last attempt)"
            )
            continue
        out.append(delivery)
    return out
