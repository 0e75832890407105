"""Namespace pull deliveries: receive, settle, renew locks; poison isolated, close bounded.

`PullConsumer` wraps one ``EventGridConsumerClient``. Receive goes through the
client's own pipeline (auth, retries, timeouts) with ``send_request`` and reads
the raw response with mapping.parse_receive, not with the SDK's model
deserializer: that one raises on the first event it cannot read (a ``time``
of "not-a-time" from another publisher), losing the lock tokens of the whole
batch, so every event of it came back until Event Grid dead-lettered all of
them. Now each item is decoded on its own; an item that cannot be decoded (a
poison) is rejected at once, alone: Event Grid dead-letters it with the bytes
it received, and the reason is logged (the reject API takes none). Reading
dead letters decodes the same way but never rejects or drops: a poison comes
back as mapping.undecodable_event (raw bytes and reason).

`AzureDelivery.ack` queues the lock token; the queue is flushed with one
acknowledge call at the next receive, after `ack_flush_interval` seconds, or
on close. Nack maps to release with the smallest documented delay (0, 10, 60,
600, 3600 s) not shorter than asked; dead_letter maps to reject. `extend`
calls renewLock: Event Grid takes no duration, it renews the lock for the
subscription's lock duration from now (polybus sets that to the policy's
ack_deadline, at most 300 s), and refuses once the event has been locked for
an hour; a lost lock raises AdapterError. A `Budget` carries the portable
attempt count and, above Event Grid's native 10, how to republish to the
redelivery topic.

Close settles within `close_timeout`: acks are flushed and held locks
released with SDK retries off and per-call timeouts cut to what is left, so an
endpoint that no longer answers cannot hold it for the SDK's minutes of
retries.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, map_error
from azure.core.rest import HttpRequest
from azure.eventgrid import EventGridConsumerClient
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.config import AzureConfig
from polybus.adapters.azure.errors import status_of, translate_errors
from polybus.adapters.azure.mapping import (
    Received,
    parse_receive,
    stamp_copy,
    to_wire,
    undecodable_event,
)
from polybus.adapters.azure.provisioning import MAX_DELIVERY_COUNT
from polybus.core.errors import AdapterError, ValidationError

log = logging.getLogger(__name__)

RELEASE_DELAYS = (0, 10, 60, 600, 3600)
MAX_RECEIVE = 100
NAMESPACE_API_VERSION = "2024-06-01"


def release_delay_for(delay: float) -> int:
    """The smallest documented release delay >= `delay` (3600 at most)."""
    for allowed in RELEASE_DELAYS:
        if delay <= allowed:
            return allowed
    return RELEASE_DELAYS[-1]


@dataclass(frozen=True)
class Budget:
    """A subscription's delivery limits: portable attempts, native count, how to go beyond."""

    max_attempts: int
    native_max: int = MAX_DELIVERY_COUNT
    republish: Callable[[dict[str, Any]], None] | None = None


class AzureDelivery:
    """One received event and its lock token; settle it exactly once, renew it while working."""

    __slots__ = ("_consumer", "_lock", "_native_count", "_settled", "_token", "attempt", "event")

    def __init__(
        self,
        event: CloudEvent,
        attempt: int,
        token: str,
        consumer: PullConsumer,
        native_count: int | None = None,
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._token = token
        self._consumer = consumer
        self._native_count = attempt if native_count is None else native_count
        self._settled = False
        self._lock = threading.Lock()

    def _settle(self) -> None:
        with self._lock:
            if self._settled:
                raise AdapterError(f"delivery {self.event.get_id()} is already settled")
            self._settled = True

    def ack(self) -> None:
        """Acknowledge (batched with other acks of the same subscription)."""
        self._settle()
        self._consumer.queue_ack(self._token)

    def nack(self, delay: float = 0.0) -> None:
        """Release for redelivery after at least `delay` seconds (Event Grid's delay steps).

        On the native limit with portable attempts left, the event goes on
        through the redelivery topic (see adapter.py); with the
        portable attempts used up before the native limit, it is rejected.
        """
        self._settle()
        budget = self._consumer.budget
        at_native_limit = self._native_count >= budget.native_max
        if self.attempt >= budget.max_attempts and not at_native_limit:
            self._consumer.reject([self._token])
        elif at_native_limit and self.attempt < budget.max_attempts and budget.republish:
            budget.republish(stamp_copy(to_wire(self.event), self.attempt, delay))
            self._consumer.queue_ack(self._token)
        else:
            self._consumer.release([self._token], release_delay_for(delay))

    def dead_letter(self, reason: str) -> None:
        """Reject: Event Grid dead-letters it now (its reason is 'Rejected'; `reason` is logged)."""
        self._settle()
        log.info("dead-lettering %s: %s", self.event.get_id(), reason)
        self._consumer.reject([self._token])

    def extend(self, seconds: float) -> None:
        """Renew the lock (renewLock): locked for the subscription's lock duration from now.

        Event Grid renews by the lock duration set on the subscription, not by
        `seconds`, and only within an hour of the receive. Does nothing once
        settled; AdapterError when the lock is already lost.
        """
        with self._lock:
            if self._settled:
                return
        self._consumer.renew(self._token)


class PullConsumer:
    """A consumer client for one namespace subscription plus its queued acks."""

    def __init__(
        self,
        client: EventGridConsumerClient,
        config: AzureConfig,
        topic: str,
        sub: str,
        *,
        dead_letters: bool = False,
    ) -> None:
        self.client = client
        self.config = config
        self.topic = topic
        self.sub = sub
        self.what = f"{topic}/{sub}"
        self.dead_letters = dead_letters
        self.lock = threading.Lock()
        self.budget = Budget(MAX_DELIVERY_COUNT)
        self.pending_acks: list[str] = []
        self.outstanding: set[str] = set()
        self.poison = 0  # undecodable events rejected so far (for logs and tests)
        self._path = f"/topics/{quote(topic, safe='')}/eventsubscriptions/{quote(sub, safe='')}"
        self._call: dict[str, Any] = {
            "retry_total": config.retries,
            "connection_timeout": config.timeout,
            "read_timeout": config.timeout,
        }

    def receive(self, max_events: int, timeout: float) -> list[AzureDelivery]:
        """Flush queued acks, then receive up to `max_events`; poison is rejected, never returned."""
        self.flush()
        count = max(1, min(MAX_RECEIVE, max_events))
        if self.config.admin:  # the emulator takes any wait 0..120 s, fractions included
            wait = max(0.0, min(120.0, timeout))
            wait_param = f"{wait:.3f}"
        else:  # Event Grid takes 10..120 whole seconds
            wait = float(min(120, max(10, math.ceil(timeout))))
            wait_param = str(int(wait))
        request = HttpRequest(
            "POST",
            f"{self._path}:receive",
            params={
                "api-version": NAMESPACE_API_VERSION,
                "maxEvents": count,
                "maxWaitTime": wait_param,
            },
        )
        with translate_errors(f"receive from {self.what}"):
            response = self.client.send_request(
                request, **{**self._call, "read_timeout": wait + self.config.timeout}
            )
            if response.status_code != 200:
                map_error(status_code=response.status_code, response=response, error_map={})
                raise HttpResponseError(response=response)
            body = response.read()
        try:
            items = parse_receive(body)
        except ValidationError as exc:  # not a receive response at all: the locks expire
            raise AdapterError(f"azure receive from {self.what}: {exc}") from exc
        out: list[AzureDelivery] = []
        hide: list[tuple[str, float]] = []
        poison: list[str] = []
        for item in items:
            self.outstanding.add(item.lock_token)
            delivery = self._admit(item, hide, poison)
            if delivery is not None:
                out.append(delivery)
        if poison:
            self.reject(poison)
        for token, left in hide:  # a delayed redelivery copy, not due: hide it natively
            self.release([token], release_delay_for(left))
        return out

    def _admit(
        self, item: Received, hide: list[tuple[str, float]], poison: list[str]
    ) -> AzureDelivery | None:
        try:
            event, copy = item.decode()
        except ValidationError as exc:
            if self.dead_letters:  # never reject or drop a dead letter: hand out a stand-in
                native = (item.dead_letter or {}).get("deadLetterReason", "")
                reason = f"undecodable ({native or 'dead-lettered'}): {exc}"
                stand_in = undecodable_event(item.event_bytes(), reason, self.what)
                return AzureDelivery(stand_in, _dead_attempts(item), item.lock_token, self)
            self.poison += 1
            log.warning(
                "%s: undecodable event rejected to the dead-letter destination (%d bytes): %s",
                self.what,
                len(item.event_bytes()),
                exc,
            )
            poison.append(item.lock_token)
            return None
        count = item.delivery_count
        if self.dead_letters:
            return AzureDelivery(event, _dead_attempts(item), item.lock_token, self)
        if copy.must_hide(count):
            hide.append((item.lock_token, copy.wait_left()))
            return None
        return AzureDelivery(event, copy.attempt(count), item.lock_token, self, count)

    def queue_ack(self, token: str) -> None:
        """Queue an ack; flush at once when the batch is full or batching is off."""
        with self.lock:
            self.pending_acks.append(token)
            full = len(self.pending_acks) >= MAX_RECEIVE
        if full or self.config.ack_flush_interval == 0:
            self.flush()

    def flush(self, **call: Any) -> None:
        """Acknowledge every queued lock token (100 per call)."""
        with self.lock:
            tokens, self.pending_acks = self.pending_acks, []
        for start in range(0, len(tokens), MAX_RECEIVE):
            chunk = tokens[start : start + MAX_RECEIVE]
            try:
                with translate_errors(f"acknowledge on {self.what}"):
                    result = self.client.acknowledge(lock_tokens=chunk, **{**self._call, **call})
            except AdapterError:
                with self.lock:  # keep them for the next flush (a lock that expires comes back)
                    self.pending_acks[:0] = tokens[start:]
                raise
            self._settled(chunk, result.failed_lock_tokens)

    def release(self, tokens: list[str], delay: int, **call: Any) -> None:
        """Release locks for redelivery after `delay` seconds (one of Event Grid's steps)."""
        with translate_errors(f"release on {self.what}"):
            result = self.client.release(
                lock_tokens=tokens, release_delay=delay or None, **{**self._call, **call}
            )
        self._settled(tokens, result.failed_lock_tokens)

    def reject(self, tokens: list[str]) -> None:
        """Reject: Event Grid dead-letters the events."""
        with translate_errors(f"reject on {self.what}"):
            result = self.client.reject(lock_tokens=tokens, **self._call)
        self._settled(tokens, result.failed_lock_tokens)

    def renew(self, token: str) -> None:
        """renewLock for one held lock; AdapterError when Event Grid refuses it (lock lost)."""
        with translate_errors(f"renew lock on {self.what}"):
            result = self.client.renew_locks(lock_tokens=[token], **self._call)
        for failure in result.failed_lock_tokens:
            raise AdapterError(
                f"azure renew lock on {self.what}: {failure.error.code}: {failure.error.message}"
            )

    def _settled(self, tokens: list[str], failed: Sequence[Any]) -> None:
        self.outstanding.difference_update(tokens)
        for failure in failed:
            log.warning(
                "%s: lock token %s not settled: %s",
                self.what,
                failure.lock_token,
                failure.error.message,
            )

    def close(self, deadline: float | None = None) -> None:
        """Flush acks and release what is still locked before `deadline` (monotonic), then close.

        SDK retries are off and every call's timeouts are cut to the time left,
        so an endpoint that does not answer cannot hold close past the deadline.
        """
        if deadline is None:
            deadline = time.monotonic() + self.config.close_timeout
        try:
            left = deadline - time.monotonic()
            if left > 0.05 and self.pending_acks:
                self.flush(**_bounded(left))
            left = deadline - time.monotonic()
            if left > 0.05 and self.outstanding:
                self.release(sorted(self.outstanding), 0, **_bounded(left))
        except AdapterError as exc:
            log.warning("%s: settling on close failed: %s", self.what, exc)
        finally:
            self.client.close()

    def missing(self, error: AdapterError) -> bool:
        """Whether `error` says the subscription (or its topic) does not exist (HTTP 404)."""
        return status_of(error) == 404


def _bounded(seconds: float) -> dict[str, Any]:
    """Per-call SDK options: no retries, every timeout within `seconds`."""
    return {"retry_total": 0, "connection_timeout": seconds, "read_timeout": seconds}


def _dead_attempts(item: Received) -> int:
    attempts = (item.dead_letter or {}).get("deliveryAttempts")
    return attempts if type(attempts) is int and attempts > 0 else max(1, item.delivery_count)
