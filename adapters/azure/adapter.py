"""The azure adapter: Event Grid through the real SDK, by namespace pull or webhook push.

Publish goes through ``EventGridPublisherClient`` (namespace topics by default,
basic topics with ``namespace = false``). With ``delivery = "pull"`` (default)
subscriptions are namespace event subscriptions read with
``EventGridConsumerClient`` (receive, acknowledge, release, reject); with
``delivery = "push"`` they are basic-topic webhook subscriptions delivering to
a receiver the adapter runs (polybus.adapters.azure.push). Acks are batched: ``ack()`` queues the lock token and the
queue is flushed with one acknowledge call at the next receive, after
`ack_flush_interval` seconds, or on close. Nack maps to release with the
smallest documented delay (0, 10, 60, 600, 3600 s) not shorter than asked;
dead_letter maps to reject. The native max delivery count is the portable
one up to Event Grid's 10; larger portable counts go on through a private
redelivery topic (polybus.adapters.azure.redelivery).
Every SDK failure is translated in `_translated` into a polybus error.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.admin import AdminError, EmulatorAdmin
from polybus.adapters.azure.filters import to_eventgrid
from polybus.adapters.azure.mapping import from_azure, native_name, to_azure
from polybus.adapters.azure.push import PushSubscriptions
from polybus.adapters.azure.redelivery import (
    REDELIVERY_SUBSCRIPTION,
    Budget,
    redelivery_topic_name,
    stamp_copy,
    take_copy_state,
)
from polybus.adapters.azure.settings import AzureSettings
from polybus.core.contract import Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, PublishError
from polybus.core.filters.dialects import Filter

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

    __slots__ = ("_consumer", "_native_count", "_settled", "_token", "attempt", "event")

    def __init__(
        self,
        event: CloudEvent,
        attempt: int,
        token: str,
        consumer: _Consumer,
        native_count: int | None = None,
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._token = token
        self._consumer = consumer
        self._native_count = attempt if native_count is None else native_count
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
        """Release for redelivery after at least `delay` seconds (Event Grid's delay steps).

        On the native limit with portable attempts left, the event goes on
        through the redelivery topic (polybus.adapters.azure.redelivery); with the
        portable attempts used up before the native limit, it is rejected.
        """
        self._settle()
        budget = self._consumer.budget
        at_native_limit = self._native_count >= budget.native_max
        if self.attempt >= budget.max_attempts and not at_native_limit:
            self._consumer.reject([self._token])
        elif at_native_limit and self.attempt < budget.max_attempts and budget.republish:
            budget.republish(stamp_copy(to_azure(self.event), self.attempt, delay))
            self._consumer.queue_ack(self._token)
        else:
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
        self.budget = Budget(MAX_DELIVERY_COUNT)
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
        out, hide = [], []
        for detail in details:  # mapping access: the models' attributes re-deserialize per read
            broker, event = detail["brokerProperties"], detail["event"]
            token, count = broker["lockToken"], broker["deliveryCount"]
            self.outstanding.add(token)
            copy = take_copy_state(event)
            if copy.must_hide(count):
                hide.append((token, copy.wait_left()))
                continue
            delivery = AzureDelivery(from_azure(event), copy.attempt(count), token, self, count)
            out.append(delivery)
        for token, wait in hide:  # a delayed redelivery copy, not due: hide it natively
            self.release([token], release_delay_for(wait))
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


@dataclass(frozen=True)
class PullRoute:
    """A pull subscription: its topic, name, dead-letter and redelivery topics, attempts."""

    topic: str
    sub: str
    dlq_topic: str | None
    redelivery_topic: str | None
    max_attempts: int

    def consumers(self) -> list[tuple[str, str]]:
        """The (topic, subscription) pairs receive reads from."""
        pairs = [(self.topic, self.sub)]
        if self.redelivery_topic is not None:
            pairs.append((self.redelivery_topic, REDELIVERY_SUBSCRIPTION))
        return pairs


class AzureAdapter:
    """Event Grid through the azure-eventgrid SDK (see the module docstring)."""

    name = "azure"

    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self.credential = AzureKeyCredential(settings.key)
        self.admin = EmulatorAdmin(settings.endpoint, settings.key, settings.timeout)
        self._publishers: dict[str, EventGridPublisherClient] = {}
        self._known_topics: set[str] = set()
        self._routes: dict[str, PullRoute] = {}
        self.push = PushSubscriptions(settings, self.admin) if settings.delivery == "push" else None
        self._budgets: dict[str, Budget] = {}
        self._turn = 0
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
        """Create/update the pull or push subscription (emulator) and return the residual filter."""
        if not self.settings.namespace and self.push is None:
            raise AdapterError(
                'azure: basic topics deliver by push only: set delivery = "push", '
                "or use namespace topics for pull subscriptions"
            )
        topic, sub = self.topic_name(spec.topic), native_name(spec.name)
        compiled = to_eventgrid(spec.filter)
        native_filter = compiled.native if isinstance(compiled.native, Mapping) else None
        residual = compiled.residual if native_filter is not None else spec.filter
        if not self.settings.admin:  # real Azure: created in ARM; everything filtered client-side
            native_filter, residual = None, spec.filter
        if self.push is not None:
            self._ensure_topic(topic)
            with _translated(f"provision {spec.name}"):
                self.push.provision(spec, topic, sub, native_filter)
            return residual
        max_attempts = spec.policy.max_delivery_attempts
        route = PullRoute(
            topic,
            sub,
            native_name(spec.policy.dead_letter_name(spec.name)) if self.settings.admin else None,
            native_name(redelivery_topic_name(spec.name))
            if max_attempts > MAX_DELIVERY_COUNT
            else None,
            max_attempts,
        )
        if self.settings.admin:
            self._create_pull(route, spec, native_filter)
        self._routes[spec.name] = route
        budget = self._budgets[spec.name] = self._budget(route)
        for topic_sub in route.consumers():
            consumer = self._consumers.get(topic_sub)
            if consumer is not None:
                consumer.budget = budget
        return residual

    def _create_pull(
        self, route: PullRoute, spec: SubscriptionSpec, native_filter: Mapping[str, Any] | None
    ) -> None:
        lock = min(300.0, spec.policy.ack_deadline)
        native_max = min(MAX_DELIVERY_COUNT, route.max_attempts)
        assert route.dlq_topic is not None  # always set against the emulator
        for topic in (route.topic, route.dlq_topic, route.redelivery_topic):
            if topic is not None:
                self._ensure_topic(topic)
        with _translated(f"provision {spec.name}"):
            self.admin.put_pull_subscription(route.dlq_topic, DLQ_SUBSCRIPTION)
            self.admin.put_pull_subscription(
                route.topic,
                route.sub,
                filter=native_filter,
                max_delivery_count=native_max,
                lock_duration=lock,
                dead_letter_topic=route.dlq_topic,
            )
            if route.redelivery_topic is not None:
                self.admin.put_pull_subscription(
                    route.redelivery_topic,
                    REDELIVERY_SUBSCRIPTION,
                    max_delivery_count=MAX_DELIVERY_COUNT,
                    lock_duration=lock,
                    dead_letter_topic=route.dlq_topic,
                )

    def _budget(self, route: PullRoute) -> Budget:
        redelivery = route.redelivery_topic
        if redelivery is None:
            return Budget(route.max_attempts, min(MAX_DELIVERY_COUNT, route.max_attempts))

        def republish(copy: Any) -> None:
            publisher = self._publisher(redelivery)
            with _translated(f"republish to {redelivery}"):
                publisher.send([copy])

        return Budget(route.max_attempts, MAX_DELIVERY_COUNT, republish)

    def _route(self, subscription: str) -> PullRoute:
        route = self._routes.get(subscription)
        if route is None and subscription in self.settings.subscriptions:
            topic = self.topic_name(self.settings.subscriptions[subscription])
            route = PullRoute(topic, native_name(subscription), None, None, MAX_DELIVERY_COUNT)
        if route is None:
            raise AdapterError(
                f"azure: unknown subscription {subscription!r}: provision it first or list it "
                "under [azure.subscriptions]"
            )
        return route

    def _consumer(self, topic: str, sub: str, budget: Budget | None = None) -> _Consumer:
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
                if budget is not None:
                    consumer.budget = budget
                self._consumers[(topic, sub)] = consumer
                self._start_flusher()
            return consumer

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Up to `max_events` deliveries, waiting at most `timeout` seconds (10 s min on Azure)."""
        if self.push is not None:
            return self.push.receive(subscription, max_events, timeout)
        route = self._route(subscription)
        budget = self._budgets.get(subscription)
        if budget is None:
            budget = self._budgets[subscription] = self._budget(route)
        main = self._consumer(route.topic, route.sub, budget)
        if route.redelivery_topic is None:
            return list(main.receive(max_events, timeout))
        copies = self._consumer(route.redelivery_topic, REDELIVERY_SUBSCRIPTION, budget)
        if not self.settings.admin:  # Azure waits >= 10 s per receive: take turns
            self._turn += 1
            first = copies if self._turn % 2 else main
            return list(first.receive(max_events, timeout))
        out: list[Delivery] = list(copies.receive(max_events, 0.0))
        if len(out) < max_events:
            out.extend(main.receive(max_events - len(out), 0.0 if out else timeout))
        return out

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Dead letters from the emulator's dead-letter topic (Azure writes them to Blob storage)."""
        if self.push is not None:
            with _translated(f"read dead letters of {subscription}"):
                return self.push.receive_dead_letters(subscription, max_events, timeout)
        dlq_topic = self._route(subscription).dlq_topic
        if dlq_topic is None:
            raise AdapterError(
                "azure: Event Grid dead-letters namespace events to Azure Blob storage; "
                "read them there (receive_dead_letters works against the emulator)"
            )
        return list(self._consumer(dlq_topic, DLQ_SUBSCRIPTION).receive(max_events, timeout))

    def delete_subscription(self, subscription: str) -> None:
        """Delete the subscription and what was created for it (idempotent)."""
        if self.push is not None:
            with _translated(f"delete subscription {subscription}"):
                self.push.delete(subscription)
            return
        route = self._routes.pop(subscription, None)
        self._budgets.pop(subscription, None)
        if route is None:
            return
        for key in (*route.consumers(), (route.dlq_topic or "", DLQ_SUBSCRIPTION)):
            with self._lock:
                consumer = self._consumers.pop(key, None)
            if consumer is not None:
                consumer.close()
        if self.settings.admin:
            with _translated(f"delete subscription {subscription}"):
                self.admin.delete_pull_subscription(route.topic, route.sub)
                for topic in (route.dlq_topic, route.redelivery_topic):
                    if topic:
                        self.admin.delete_namespace_topic(topic)
                        self._known_topics.discard(topic)

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
        if self.push is not None:
            self.push.close()
