"""The azure adapter: Event Grid namespace topics with pull delivery, through the real SDK.

Publish goes through ``EventGridPublisherClient`` (namespace topics by default,
basic topics with ``namespace = false``); subscriptions are namespace event
subscriptions read with ``EventGridConsumerClient`` (receive, acknowledge,
release, reject). Acks are batched: ``ack()`` queues the lock token and the
queue is flushed with one acknowledge call at the next receive, after
`ack_flush_interval` seconds, or on close. Nack maps to release with the
smallest documented delay (0, 10, 60, 600, 3600 s) not shorter than asked;
dead_letter maps to reject. The native max delivery count is the portable
one (Event Grid allows 1..10; larger portable counts are capped at 10).
Every SDK failure is translated in `_translated` into a polybus error.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient
from cloudevents.core.v1.event import CloudEvent

from adapters.azure.admin import AdminError, EmulatorAdmin
from adapters.azure.mapping import from_azure, native_name, to_azure
from adapters.azure.settings import AzureSettings
from core.contract import Delivery, SubscriptionSpec
from core.errors import AdapterError, PublishError
from core.filters.dialects import Filter
from core.filters.native.eventgrid import to_eventgrid

log = logging.getLogger(__name__)

RELEASE_DELAYS = (0, 10, 60, 600, 3600)
MAX_DELIVERY_COUNT = 10
MAX_RECEIVE = 100
MAX_PUBLISH_BATCH = 1000
DLQ_SUBSCRIPTION = "deadletters"


def release_delay_for(delay: float) -> int:
    """The smallest documented release delay >= `delay` (3600 at most)."""
    for allowed in RELEASE_DELAYS:
        if delay <= allowed:
            return allowed
    return RELEASE_DELAYS[-1]


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one place SDK and admin errors become polybus errors."""
    try:
        yield
    except AdminError as exc:
        raise AdapterError(f"azure {action}: emulator admin API said {exc}") from exc
    except HttpResponseError as exc:
        raise AdapterError(f"azure {action}: HTTP {exc.status_code}: {exc.message}") from exc
    except AzureError as exc:
        raise AdapterError(f"azure {action}: {type(exc).__name__}: {exc.message}") from exc


class AzureDelivery:
    """One received event and its lock token; settle it exactly once."""

    __slots__ = ("_consumer", "_settled", "_token", "attempt", "event")

    def __init__(self, event: CloudEvent, attempt: int, token: str, consumer: _Consumer) -> None:
        self.event = event
        self.attempt = attempt
        self._token = token
        self._consumer = consumer
        self._settled = False

    def _settle(self) -> None:
        if self._settled:
            raise AdapterError(f"delivery {self.event.get_id()} is already settled")
        self._settled = True

    def ack(self) -> None:
        """Acknowledge (batched with other acks of the same subscription)."""
        self._settle()
        self._consumer.queue_ack(self._token)

    def nack(self, delay: float = 0.0) -> None:
        """Release for redelivery after at least `delay` seconds (Event Grid's delay steps)."""
        self._settle()
        self._consumer.release([self._token], release_delay_for(delay))

    def dead_letter(self, reason: str) -> None:
        """Reject: Event Grid dead-letters it now (its reason is 'Rejected'; `reason` is logged)."""
        self._settle()
        log.info("dead-lettering %s: %s", self.event.get_id(), reason)
        self._consumer.reject([self._token])


class _Consumer:
    """A consumer client for one namespace subscription plus its queued acks."""

    def __init__(self, client: EventGridConsumerClient, settings: AzureSettings, what: str) -> None:
        self.client = client
        self.settings = settings
        self.what = what
        self.lock = threading.Lock()
        self.pending_acks: list[str] = []
        self.outstanding: set[str] = set()

    def receive(self, max_events: int, timeout: float) -> list[AzureDelivery]:
        self.flush()
        count = max(1, min(MAX_RECEIVE, max_events))
        kwargs: dict[str, Any]
        if self.settings.admin:  # the emulator takes any wait 0..120 s, fractions included
            wait = max(0.0, min(120.0, timeout))
            kwargs = {"params": {"maxWaitTime": f"{wait:.3f}"}}
        else:  # Event Grid takes 10..120 whole seconds
            wait = float(min(120, max(10, math.ceil(timeout))))
            kwargs = {"max_wait_time": int(wait)}
        with _translated(f"receive from {self.what}"):
            details = self.client.receive(
                max_events=count, read_timeout=wait + self.settings.timeout, **kwargs
            )
        out = []
        for detail in details:  # mapping access: the models' attributes re-deserialize per read
            broker, event = detail["brokerProperties"], detail["event"]
            token = broker["lockToken"]
            out.append(AzureDelivery(from_azure(event), broker["deliveryCount"], token, self))
            self.outstanding.add(token)
        return out

    def queue_ack(self, token: str) -> None:
        with self.lock:
            self.pending_acks.append(token)
            full = len(self.pending_acks) >= MAX_RECEIVE
        if full or self.settings.ack_flush_interval == 0:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            tokens, self.pending_acks = self.pending_acks, []
        for start in range(0, len(tokens), MAX_RECEIVE):
            chunk = tokens[start : start + MAX_RECEIVE]
            with _translated(f"acknowledge on {self.what}"):
                result = self.client.acknowledge(lock_tokens=chunk)
            self._settled(chunk, result.failed_lock_tokens)

    def release(self, tokens: list[str], delay: int) -> None:
        with _translated(f"release on {self.what}"):
            result = self.client.release(lock_tokens=tokens, release_delay=delay or None)
        self._settled(tokens, result.failed_lock_tokens)

    def reject(self, tokens: list[str]) -> None:
        with _translated(f"reject on {self.what}"):
            result = self.client.reject(lock_tokens=tokens)
        self._settled(tokens, result.failed_lock_tokens)

    def _settled(self, tokens: list[str], failed: Sequence[Any]) -> None:
        self.outstanding.difference_update(tokens)
        for failure in failed:
            log.warning(
                "%s: lock token %s not settled: %s",
                self.what,
                failure.lock_token,
                failure.error.message,
            )

    def close(self) -> None:
        """Flush acks, release what is still locked, close the client."""
        try:
            self.flush()
            if self.outstanding:
                self.release(sorted(self.outstanding), 0)
        except AdapterError as exc:
            log.warning("%s: settling on close failed: %s", self.what, exc)
        finally:
            self.client.close()


class AzureAdapter:
    """Event Grid through the azure-eventgrid SDK (see the module docstring)."""

    name = "azure"

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self.credential = AzureKeyCredential(settings.key)
        self.admin = EmulatorAdmin(settings.endpoint, settings.key, settings.timeout)
        self._publishers: dict[str, EventGridPublisherClient] = {}
        self._known_topics: set[str] = set()
        self._routes: dict[str, tuple[str, str, str | None]] = {}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- publish --------------------------------------------------------------
    def topic_name(self, topic: str) -> str:
        """The Event Grid topic (or, for basic topics without admin, endpoint) for `topic`."""
        return self.settings.topics.get(topic) or native_name(topic)

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Send the batch; splits on 413 and on Event Grid's batch limits."""
        if not events:
            return
        native = self.topic_name(topic)
        self._ensure_topic(native)
        publisher = self._publisher(native)
        wire = [to_azure(e) for e in events]
        self._send(publisher, native, list(events), wire)

    def _send(
        self,
        publisher: EventGridPublisherClient,
        native: str,
        events: list[CloudEvent],
        wire: list[Any],
    ) -> None:
        for start in range(0, len(wire), MAX_PUBLISH_BATCH):
            chunk, originals = (
                wire[start : start + MAX_PUBLISH_BATCH],
                events[start : start + MAX_PUBLISH_BATCH],
            )
            try:
                if self.settings.namespace:
                    publisher.send(chunk)
                else:
                    publisher.send(
                        chunk,
                        retry_total=self.settings.retries,
                        connection_timeout=self.settings.timeout,
                        read_timeout=self.settings.timeout,
                    )
            except HttpResponseError as exc:
                if exc.status_code == 413 and len(chunk) > 1:
                    half = len(chunk) // 2
                    self._send(publisher, native, originals[:half], chunk[:half])
                    self._send(publisher, native, originals[half:], chunk[half:])
                    continue
                reason = f"HTTP {exc.status_code}: {exc.message}"
                raise PublishError({e.get_id(): reason for e in originals}) from exc
            except AzureError as exc:
                raise AdapterError(f"azure publish to {native}: {exc.message}") from exc

    def _publisher(self, native: str) -> EventGridPublisherClient:
        publisher = self._publishers.get(native)
        if publisher is None:
            if self.settings.namespace:
                publisher = EventGridPublisherClient(
                    self.settings.endpoint,
                    self.credential,
                    namespace_topic=native,
                    retry_total=self.settings.retries,
                    connection_timeout=self.settings.timeout,
                    read_timeout=self.settings.timeout,
                )
            else:
                url = (
                    native
                    if native.startswith("http")
                    else f"{self.settings.endpoint}/{native}/api/events"
                )
                publisher = EventGridPublisherClient(url, self.credential)
            self._publishers[native] = publisher
        return publisher

    def _ensure_topic(self, native: str) -> None:
        if not self.settings.admin or native in self._known_topics:
            return
        with _translated(f"create topic {native}"):
            if self.settings.namespace:
                self.admin.put_namespace_topic(native)
            else:
                self.admin.put_basic_topic(native)
        self._known_topics.add(native)

    # -- subscriptions --------------------------------------------------------
    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create/update the pull subscription (emulator) and return the residual filter."""
        if not self.settings.namespace:
            raise AdapterError(
                "azure: basic topics deliver by push only; use namespace topics for subscriptions"
            )
        topic, sub = self.topic_name(spec.topic), native_name(spec.name)
        dlq_topic = native_name(spec.policy.dead_letter_name(spec.name))
        compiled = to_eventgrid(spec.filter)
        native_filter = compiled.native if isinstance(compiled.native, Mapping) else None
        residual = compiled.residual if native_filter is not None else spec.filter
        if self.settings.admin:
            self._ensure_topic(topic)
            self._ensure_topic(dlq_topic)
            with _translated(f"provision {spec.name}"):
                self.admin.put_pull_subscription(dlq_topic, DLQ_SUBSCRIPTION)
                self.admin.put_pull_subscription(
                    topic,
                    sub,
                    filter=native_filter,
                    max_delivery_count=min(MAX_DELIVERY_COUNT, spec.policy.max_delivery_attempts),
                    lock_duration=min(300.0, spec.policy.ack_deadline),
                    dead_letter_topic=dlq_topic,
                )
        else:  # real Azure: the subscription exists (ARM); everything is filtered client-side
            residual = spec.filter
        self._routes[spec.name] = (topic, sub, dlq_topic if self.settings.admin else None)
        return residual

    def _route(self, subscription: str) -> tuple[str, str, str | None]:
        route = self._routes.get(subscription)
        if route is None and subscription in self.settings.subscriptions:
            topic = self.topic_name(self.settings.subscriptions[subscription])
            route = (topic, native_name(subscription), None)
        if route is None:
            raise AdapterError(
                f"azure: unknown subscription {subscription!r}: provision it first or list it "
                "under [azure.subscriptions]"
            )
        return route

    def _consumer(self, topic: str, sub: str) -> _Consumer:
        with self._lock:
            consumer = self._consumers.get((topic, sub))
            if consumer is None:
                client = EventGridConsumerClient(
                    self.settings.endpoint,
                    self.credential,
                    namespace_topic=topic,
                    subscription=sub,
                    retry_total=self.settings.retries,
                    connection_timeout=self.settings.timeout,
                )
                consumer = _Consumer(client, self.settings, f"{topic}/{sub}")
                self._consumers[(topic, sub)] = consumer
                self._start_flusher()
            return consumer

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Up to `max_events` deliveries, waiting at most `timeout` seconds (10 s min on Azure)."""
        topic, sub, _ = self._route(subscription)
        return list(self._consumer(topic, sub).receive(max_events, timeout))

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Dead letters from the emulator's dead-letter topic (Azure writes them to Blob storage)."""
        _, _, dlq_topic = self._route(subscription)
        if dlq_topic is None:
            raise AdapterError(
                "azure: Event Grid dead-letters namespace events to Azure Blob storage; "
                "read them there (receive_dead_letters works against the emulator)"
            )
        return list(self._consumer(dlq_topic, DLQ_SUBSCRIPTION).receive(max_events, timeout))

    def delete_subscription(self, subscription: str) -> None:
        """Delete the subscription and its dead-letter topic (idempotent)."""
        route = self._routes.pop(subscription, None)
        if route is None:
            return
        topic, sub, dlq_topic = route
        for key in ((topic, sub), (dlq_topic or "", DLQ_SUBSCRIPTION)):
            with self._lock:
                consumer = self._consumers.pop(key, None)
            if consumer is not None:
                consumer.close()
        if self.settings.admin:
            with _translated(f"delete subscription {subscription}"):
                self.admin.delete_pull_subscription(topic, sub)
                if dlq_topic:
                    self.admin.delete_namespace_topic(dlq_topic)
                    self._known_topics.discard(dlq_topic)

    # -- lifecycle ------------------------------------------------------------
    def _start_flusher(self) -> None:
        if self._flusher is None and self.settings.ack_flush_interval > 0:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="azure-acks", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.settings.ack_flush_interval):
            with self._lock:
                consumers = [c for c in self._consumers.values() if c.pending_acks]
            for consumer in consumers:
                try:
                    consumer.flush()
                except AdapterError as exc:
                    log.warning("azure: background acknowledge failed: %s", exc)

    def close(self) -> None:
        """Flush acks, release unsettled deliveries, close every client."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            consumer.close()
        for publisher in self._publishers.values():
            publisher.close()
        self._publishers.clear()
