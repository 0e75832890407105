"""Deliveries: long-poll a subscription's SQS queue and settle what it delivers.

ack = DeleteMessage. nack(delay) = ChangeMessageVisibility(delay, rounded up
to whole seconds as SQS counts them), or, once the delivery was the policy's
last attempt, dead_letter. dead_letter(reason) = SendMessage of the same body
to the dead-letter queue with the reason as a message attribute, then
DeleteMessage. extend(seconds) = ChangeMessageVisibility(seconds) from now,
which the runtime calls while a handler works. attempt =
ApproximateReceiveCount. A delivery nobody settles becomes visible again after
the ack deadline (the queue's VisibilityTimeout), and after
max_delivery_attempts receives SQS's redrive policy moves it to the
dead-letter queue natively. Settling twice is a no-op.

Poison: a message whose body does not decode (not JSON, nested too deeply,
an attribute such as time "not-a-time", anything the decoder raises) is
moved alone to the dead-letter queue with the reason and its body unchanged,
and never handed out; the rest of its batch is unaffected. Reading the
dead-letter queue never drops or raises on such a message: it comes back as
a ``polybus.undecodable`` event whose data is the raw body, with the reason
in its ``polybusreason`` extension, `.reason` and `.raw`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws.config import AwsConfig
from polybus.adapters.aws.errors import translate_errors
from polybus.adapters.aws.mapping import from_sqs_body
from polybus.adapters.aws.provisioning import MAX_VISIBILITY, MESSAGE_GROUP, Subscription
from polybus.adapters.aws.replay import ReplayGate
from polybus.core.errors import AdapterError

log = logging.getLogger("polybus.aws")
UNDECODABLE_TYPE = "polybus.undecodable"  # the stand-in convention azure uses too
REASON_EXTENSION = "polybusreason"
REASON = "polybus-reason"
ATTEMPTS = "polybus-attempts"
MAX_BATCH = 10  # SQS ReceiveMessage returns at most 10 messages
SHORT_POLL_PAUSE = 0.05


class SqsDelivery:
    """One SQS message holding one event; settle it with ack, nack or dead_letter."""

    def __init__(
        self,
        consumer: Consumer,
        queue_url: str,
        message: dict[str, Any],
        event: CloudEvent,
        *,
        dead_letter_url: str | None,
        max_attempts: int,
    ) -> None:
        self._consumer = consumer
        self._queue_url = queue_url
        self._message = message
        self._event = event
        self._dead_letter_url = dead_letter_url
        self._max_attempts = max_attempts
        self._attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        self._settled = False
        self._lock = threading.Lock()

    @property
    def event(self) -> CloudEvent:
        """The delivered event."""
        return self._event

    @property
    def attempt(self) -> int:
        """ApproximateReceiveCount: 1 on the first delivery."""
        return self._attempt

    @property
    def reason(self) -> str | None:
        """Why a dead letter was dead-lettered (None for live deliveries)."""
        return None if self._dead_letter_url is not None else _reason_of(self._message)

    @property
    def raw(self) -> bytes:
        """The SQS message body exactly as received (UTF-8)."""
        return str(self._message["Body"]).encode("utf-8")

    @property
    def receipt(self) -> str:
        """The SQS receipt handle of this delivery."""
        return str(self._message["ReceiptHandle"])

    def ack(self) -> None:
        """Delete the message: it is never delivered again."""
        if self._claim():
            self._consumer.delete(self._queue_url, self.receipt)

    def extend(self, seconds: float) -> None:
        """Stay invisible for `seconds` more from now (ChangeMessageVisibility, whole seconds)."""
        with self._lock:
            if self._settled:
                raise AdapterError("aws: delivery already settled")
        visibility = min(MAX_VISIBILITY, max(1, math.ceil(seconds)))
        self._consumer.change_visibility(self._queue_url, self.receipt, visibility)

    def nack(self, delay: float = 0.0) -> None:
        """Deliver again after `delay` seconds, or dead-letter once the attempts are used up."""
        if self._dead_letter_url is not None and self._attempt >= self._max_attempts:
            self.dead_letter(f"failed {self._attempt} of {self._max_attempts} delivery attempts")
            return
        if self._claim():
            seconds = min(MAX_VISIBILITY, max(0, math.ceil(delay)))
            self._consumer.change_visibility(self._queue_url, self.receipt, seconds)

    def dead_letter(self, reason: str) -> None:
        """Move the message to the dead-letter queue with `reason` (a dead letter stays put)."""
        if not self._claim():
            return
        if self._dead_letter_url is None:
            self._consumer.change_visibility(self._queue_url, self.receipt, 0)
            return
        self._consumer.move(
            self._queue_url, self._dead_letter_url, self._message, reason, self._attempt
        )

    def _claim(self) -> bool:
        with self._lock:
            if self._settled:
                return False
            self._settled = True
        self._consumer.forget(self.receipt)
        return True


class Consumer:
    """Receives from SQS for any subscription; remembers unsettled deliveries for close()."""

    def __init__(
        self,
        sqs_client: Any,
        config: AwsConfig,
        replays: ReplayGate,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sqs = sqs_client
        self._config = config
        self._replays = replays
        self._sleep = sleep
        self._monotonic = monotonic
        self._outstanding: dict[str, str] = {}  # receipt handle -> queue url
        self._lock = threading.Lock()

    def receive(self, sub: Subscription, max_events: int, timeout: float) -> list[SqsDelivery]:
        """Up to `max_events` live deliveries of the subscription."""

        def admit(message: dict[str, Any]) -> SqsDelivery | None:
            try:
                event, envelope = from_sqs_body(message["Body"])
            except Exception as exc:  # any decoder failure makes this one message poison
                try:
                    self.move(sub.queue_url, sub.dlq_url, message, poison_reason(exc), 0)
                except AdapterError:  # it reappears; SQS's redrive policy moves it in the end
                    log.warning("aws: could not dead-letter undecodable %s", message["MessageId"])
                return None
            if not self._replays.admits(sub, envelope, event):
                self.delete(sub.queue_url, message["ReceiptHandle"])
                return None
            return SqsDelivery(
                self,
                sub.queue_url,
                message,
                event,
                dead_letter_url=sub.dlq_url,
                max_attempts=sub.max_attempts,
            )

        return self._poll(sub.queue_url, max_events, timeout, admit)

    def receive_dead_letters(
        self, sub: Subscription, max_events: int, timeout: float
    ) -> list[SqsDelivery]:
        """Up to `max_events` deliveries from the subscription's dead-letter queue."""

        def admit(message: dict[str, Any]) -> SqsDelivery | None:
            try:
                event, _ = from_sqs_body(message["Body"])
            except Exception:  # not an event: hand it out as such, never drop it
                event = undecodable_event(message, sub.dlq_url)
            return SqsDelivery(
                self, sub.dlq_url, message, event, dead_letter_url=None, max_attempts=0
            )

        return self._poll(sub.dlq_url, max_events, timeout, admit)

    def _poll(
        self,
        url: str,
        max_events: int,
        timeout: float,
        admit: Callable[[dict[str, Any]], SqsDelivery | None],
    ) -> list[SqsDelivery]:
        deadline = self._monotonic() + max(0.0, timeout)
        out: list[SqsDelivery] = []
        while len(out) < max_events:
            remaining = deadline - self._monotonic()
            wait = 0 if out else max(0, min(int(self._config.wait_time), math.floor(remaining)))
            with translate_errors("ReceiveMessage"):
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(MAX_BATCH, max_events - len(out)),
                    WaitTimeSeconds=wait,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            with self._lock:
                self._outstanding.update((m["ReceiptHandle"], url) for m in messages)
            for message in messages:
                delivery = admit(message)
                if delivery is not None:
                    out.append(delivery)
            if messages:
                continue
            if out or deadline - self._monotonic() <= 0:
                break
            if wait == 0:
                self._sleep(min(SHORT_POLL_PAUSE, max(0.0, deadline - self._monotonic())))
        return out

    # -- settling -------------------------------------------------------------

    def forget(self, receipt: str) -> None:
        """The delivery with this receipt is settled."""
        with self._lock:
            self._outstanding.pop(receipt, None)

    def delete(self, url: str, receipt: str) -> None:
        """Delete a message for good."""
        self.forget(receipt)
        with translate_errors("DeleteMessage"):
            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        """Make a message visible again after `seconds`."""
        with translate_errors("ChangeMessageVisibility"):
            self._sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )

    def move(
        self, url: str, dlq_url: str, message: dict[str, Any], reason: str, attempts: int
    ) -> None:
        """Send the message's body to the dead-letter queue with `reason`, then delete it."""
        request: dict[str, Any] = {
            "QueueUrl": dlq_url,
            "MessageBody": message["Body"],
            "MessageAttributes": {
                REASON: {"DataType": "String", "StringValue": reason[:1024] or "-"},
                ATTEMPTS: {"DataType": "Number", "StringValue": str(attempts)},
            },
        }
        if dlq_url.endswith(".fifo"):
            request["MessageGroupId"] = MESSAGE_GROUP
            request["MessageDeduplicationId"] = message["MessageId"]
        with translate_errors("SendMessage to the dead-letter queue"):
            self._sqs.send_message(**request)
        self.delete(url, message["ReceiptHandle"])

    def release_all(self) -> None:
        """Make every unsettled delivery visible again at once (best effort, used by close)."""
        with self._lock:
            pending = list(self._outstanding.items())
            self._outstanding.clear()
        by_queue: dict[str, list[str]] = {}
        for receipt, url in pending:
            by_queue.setdefault(url, []).append(receipt)
        for url, receipts in by_queue.items():
            for start in range(0, len(receipts), MAX_BATCH):
                entries = [
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                    for i, r in enumerate(receipts[start : start + MAX_BATCH])
                ]
                # On failure they become visible anyway when their visibility timeout ends.
                with (
                    contextlib.suppress(AdapterError),
                    translate_errors("ChangeMessageVisibilityBatch"),
                ):
                    self._sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def poison_reason(exc: BaseException) -> str:
    """The dead-letter reason of a message body that failed to decode."""
    detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return f"undecodable: {type(exc).__name__}: {detail}"[:1000]


def undecodable_event(message: dict[str, Any], queue_url: str) -> CloudEvent:
    """A stand-in event for a dead letter that is no CloudEvent: its raw body, named by message id."""
    return CloudEvent(
        {
            "id": str(message.get("MessageId") or "unknown"),
            "source": f"/polybus/aws/{queue_url.rstrip('/').rsplit('/', 1)[-1]}",
            "type": UNDECODABLE_TYPE,
            "datacontenttype": "application/octet-stream",
            REASON_EXTENSION: (_reason_of(message) or "undecodable")[:2000],
        },
        str(message.get("Body", "")).encode("utf-8"),
    )


def _reason_of(message: dict[str, Any]) -> str | None:
    attributes = message.get("MessageAttributes", {})
    if REASON in attributes:
        return str(attributes[REASON].get("StringValue"))
    if "ERROR_CODE" in attributes:  # EventBridge's target DeadLetterConfig
        code = attributes["ERROR_CODE"].get("StringValue", "")
        detail = attributes.get("ERROR_MESSAGE", {}).get("StringValue", "")
        return f"EventBridge could not deliver: {code} {detail}".strip()
    return "received max_delivery_attempts times unsettled (SQS redrive policy)"
