"""The Google Cloud Pub/Sub adapter: CloudEvents over topics and streaming-pull subscriptions.

Publishing encodes each event with the CloudEvents Pub/Sub binding (binary
mode unless configured otherwise) and hands it to the batching
PublisherClient; a topic is created on first use and remembered. Provisioning
creates the topic, the dead-letter topic and its subscription, and the
subscription with the native filter, dead-letter and retry policies (see
mapping.py for the clamping). Receiving runs one streaming pull per
subscription with flow control; close() ends every stream, nacks whatever was
received but not settled, and flushes the publisher: nothing is lost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from google.cloud import pubsub_v1
from google.protobuf import field_mask_pb2, timestamp_pb2

from polybus.adapters.gcp import binding
from polybus.adapters.gcp.clients import (
    AlreadyExists,
    NotFound,
    make_publisher,
    make_subscriber,
    translated,
)
from polybus.adapters.gcp.config import GcpConfig
from polybus.adapters.gcp.consumer import PubSubDelivery, StreamConsumer
from polybus.adapters.gcp.filters import to_pubsub
from polybus.adapters.gcp.mapping import (
    IMMUTABLE,
    MUTABLE,
    SubscriptionPlan,
    native_attempts,
    plan_subscription,
    subscription_path,
    topic_path,
)
from polybus.core.contract import Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, EventValidationError, PublishError
from polybus.core.filters.dialects import Filter

REASON_ATTRIBUTE = "polybus-dead-letter-reason"
MAX_ACK_IDS_PER_CALL = 1000


class PubSubAdapter:
    """polybus on Google Cloud Pub/Sub (or the polybus emulator)."""

    name = "gcp"

    def __init__(self, config: GcpConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._publisher: Any = None
        self._subscriber: Any = None
        self._known_topics: set[str] = set()
        self._plans: dict[str, SubscriptionPlan] = {}
        self._exhausted_at: dict[str, int | None] = {}
        self._dead_paths: dict[str, tuple[str, str]] = {}
        self._consumers: dict[str, StreamConsumer] = {}
        self._closed = False

    # -- clients ----------------------------------------------------------------

    @property
    def publisher(self) -> Any:
        """The PublisherClient, created on first use."""
        with self._lock:
            self._check_open()
            if self._publisher is None:
                self._publisher = make_publisher(self.config)
            return self._publisher

    @property
    def subscriber(self) -> Any:
        """The SubscriberClient, created on first use."""
        with self._lock:
            self._check_open()
            if self._subscriber is None:
                self._subscriber = make_subscriber(self.config)
            return self._subscriber

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("gcp: adapter is closed")

    # -- publishing -------------------------------------------------------------

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish a batch; PublishError names each event the service refused."""
        path = topic_path(self.config.project, topic)
        self._ensure_topic(path)
        encoded = [self._encode(event) for event in events]
        failures = self._publish_encoded(path, events, encoded)
        if any(isinstance(exc, NotFound) for exc in failures.values()):
            # The topic was deleted behind our back: create it again, retry once.
            self._known_topics.discard(path)
            self._ensure_topic(path)
            retry = [i for i, exc in failures.items() if isinstance(exc, NotFound)]
            again = self._publish_encoded(
                path, [events[i] for i in retry], [encoded[i] for i in retry]
            )
            for j, exc in again.items():
                failures[retry[j]] = exc
            for i in set(retry) - {retry[j] for j in again}:
                del failures[i]
        if failures:
            raise PublishError({events[i].get_id(): str(exc) for i, exc in failures.items()})

    def _encode(self, event: CloudEvent) -> tuple[bytes, dict[str, str], str]:
        data, attributes = binding.to_message(
            event, self.config.content_mode, self.config.event_format
        )
        key = ""
        if self.config.ordering_keys:
            partition = event.get_attributes().get("partitionkey")
            if partition is not None:
                key = partition if type(partition) is str else str(partition)
        return data, attributes, key

    def _publish_encoded(
        self,
        path: str,
        events: Sequence[CloudEvent],
        encoded: Sequence[tuple[bytes, dict[str, str], str]],
    ) -> dict[int, BaseException]:
        publisher = self.publisher
        futures = []
        with translated(f"publish to {path}"):
            for data, attributes, key in encoded:
                futures.append(publisher.publish(path, data, ordering_key=key, **attributes))
        failures: dict[int, BaseException] = {}
        for i, future in enumerate(futures):
            try:
                future.result(timeout=self.config.publish_timeout)
            except Exception as exc:  # each event's own outcome; reported together below
                failures[i] = exc
                key = encoded[i][2]
                if key:
                    publisher.resume_publish(path, key)
        return failures

    def _ensure_topic(self, path: str) -> None:
        if path in self._known_topics:
            return
        with translated(f"create topic {path}"), contextlib.suppress(AlreadyExists):
            self.publisher.create_topic(name=path)
        self._known_topics.add(path)

    # -- provisioning -----------------------------------------------------------

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update the subscription (and its dead-letter topic); return the residual."""
        compiled = to_pubsub(spec.filter)
        native = compiled.native if isinstance(compiled.native, str) else None
        if native is not None and self.config.content_mode == "structured":
            # Structured messages carry the event format in content-type, not datacontenttype.
            native = None if "content-type" in native else native
        residual = compiled.residual if native is not None else spec.filter
        plan = plan_subscription(self.config.project, spec, native, self.config.retain_acked)
        self._ensure_topic(plan.topic)
        self._ensure_topic(plan.dead_letter_topic)
        subscriber = self.subscriber
        with translated(f"provision {plan.subscription}"):
            with contextlib.suppress(AlreadyExists):
                subscriber.create_subscription(
                    request={"name": plan.dead_letter_subscription, "topic": plan.dead_letter_topic}
                )
            try:
                subscriber.create_subscription(request=plan.settings)
            except AlreadyExists:
                self._reconcile(plan)
        with self._lock:
            self._plans[spec.name] = plan
            self._dead_paths.pop(spec.name, None)
            portable = spec.policy.max_delivery_attempts
            exhausted = portable if portable != native_attempts(spec.policy) else None
            self._exhausted_at[plan.subscription] = exhausted
        return residual

    def _reconcile(self, plan: SubscriptionPlan) -> None:
        """Bring an existing subscription in line with the plan (recreate if immutable parts differ)."""
        subscriber = self.subscriber
        wanted = pubsub_v1.types.Subscription(**plan.settings)
        current = subscriber.get_subscription(subscription=plan.subscription)
        if any(getattr(current, f) != getattr(wanted, f) for f in IMMUTABLE):
            self._stop_consumer(plan.subscription)
            subscriber.delete_subscription(subscription=plan.subscription)
            subscriber.create_subscription(request=plan.settings)
            return
        changed = [f for f in MUTABLE if getattr(current, f) != getattr(wanted, f)]
        if changed:
            subscriber.update_subscription(
                subscription=wanted, update_mask=field_mask_pb2.FieldMask(paths=changed)
            )

    def delete_subscription(self, subscription: str) -> None:
        """Delete the subscription and its dead-letter subscription and topic (idempotent)."""
        path = subscription_path(self.config.project, subscription)
        self._stop_consumer(path)
        dead_sub, dead_topic = self._dead_letter_paths(subscription, missing_ok=True)
        self._stop_consumer(dead_sub)
        subscriber = self.subscriber
        with translated(f"delete {path}"):
            for sub in (path, dead_sub):
                with contextlib.suppress(NotFound):
                    subscriber.delete_subscription(subscription=sub)
            with contextlib.suppress(NotFound):
                self.publisher.delete_topic(topic=dead_topic)
        self._known_topics.discard(dead_topic)
        with self._lock:
            self._plans.pop(subscription, None)
            self._dead_paths.pop(subscription, None)
            self._exhausted_at.pop(path, None)

    def _dead_letter_paths(self, subscription: str, missing_ok: bool = False) -> tuple[str, str]:
        """The dead-letter subscription and topic of `subscription`."""
        plan = self._plans.get(subscription)
        if plan is not None:
            return plan.dead_letter_subscription, plan.dead_letter_topic
        known = self._dead_paths.get(subscription)
        if known is not None:
            return known
        project = self.config.project
        path = subscription_path(project, subscription)
        default = f"{subscription}-dlq"
        try:
            with translated(f"look up {path}"):
                current = self.subscriber.get_subscription(subscription=path)
        except AdapterError:
            if not missing_ok:
                raise
            return subscription_path(project, default), topic_path(project, default)
        topic = current.dead_letter_policy.dead_letter_topic or topic_path(project, default)
        dead_id = topic.rsplit("/", 1)[1]
        paths = f"projects/{project}/subscriptions/{dead_id}", topic
        self._dead_paths[subscription] = paths
        return paths

    # -- receiving --------------------------------------------------------------

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Up to `max_events` deliveries from the subscription's streaming pull."""
        path = subscription_path(self.config.project, subscription)
        dead_topic = self._dead_letter_paths(subscription)[1]
        exhausted_at = self._exhausted_at.get(path)

        def dead_letter(message: Any, reason: str, attempt: int) -> None:
            self._forward(dead_topic, path, message, reason, attempt)

        return self._receive(path, max_events, timeout, dead_letter, exhausted_at)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Deliveries from the subscription's dead-letter subscription; ack them to remove them."""
        dead_sub = self._dead_letter_paths(subscription)[0]
        return self._receive(dead_sub, max_events, timeout, None, None)

    def _receive(
        self, path: str, max_events: int, timeout: float, dead_letter: Any, exhausted_at: int | None
    ) -> list[Delivery]:
        consumer = self._consumer(path)
        messages = consumer.take(max_events, timeout)
        out: list[Delivery] = []
        for message in messages:
            try:
                event = binding.from_message(message.data, message.attributes)
            except EventValidationError as exc:
                delivery = PubSubDelivery(consumer, message, _UNREADABLE, dead_letter, None)
                if dead_letter is None:
                    delivery.ack()  # an unreadable dead letter cannot go anywhere else
                else:
                    delivery.dead_letter(f"not a CloudEvent: {exc}")
                continue
            out.append(PubSubDelivery(consumer, message, event, dead_letter, exhausted_at))
        return out

    def _consumer(self, path: str) -> StreamConsumer:
        with self._lock:
            consumer = self._consumers.get(path)
            if consumer is not None and consumer.failed:
                self._release(consumer)
                consumer = None
            if consumer is None:
                flow = pubsub_v1.types.FlowControl(
                    max_messages=self.config.max_outstanding_messages,
                    max_bytes=self.config.max_outstanding_bytes,
                )
                with translated(f"subscribe to {path}"):
                    consumer = StreamConsumer(self.subscriber, path, flow)
                self._consumers[path] = consumer
            return consumer

    def _forward(self, topic: str, source: str, message: Any, reason: str, attempt: int) -> None:
        """Publish a copy of `message` to the dead-letter topic with the reason."""
        attributes = dict(message.attributes)
        attributes[REASON_ATTRIBUTE] = reason.encode("utf-8")[:1024].decode("utf-8", "ignore")
        attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = str(attempt)
        attributes["CloudPubSubDeadLetterSourceSubscription"] = source.rsplit("/", 1)[1]
        self._ensure_topic(topic)
        with translated(f"dead-letter to {topic}"):
            self.publisher.publish(topic, message.data, **attributes).result(
                timeout=self.config.publish_timeout
            )

    # -- replay -----------------------------------------------------------------

    def replay(self, subscription: str, since: datetime) -> None:
        """Seek the subscription to `since`: retained messages published from then on come back.

        Needs ``retain_acked`` (the default) for messages already acked, and
        reaches back at most the subscription's retention (7 days).
        """
        path = subscription_path(self.config.project, subscription)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(since)
        with translated(f"seek {path}"):
            self.subscriber.seek(request={"subscription": path, "time": stamp})

    # -- shutdown ---------------------------------------------------------------

    def _stop_consumer(self, path: str) -> None:
        with self._lock:
            consumer = self._consumers.pop(path, None)
        if consumer is not None:
            self._release(consumer)

    def _release(self, consumer: StreamConsumer) -> None:
        """Close a consumer and nack what it held, so it is redelivered at once."""
        self._consumers.pop(consumer.path, None)
        leftover = consumer.close()
        for start in range(0, len(leftover), MAX_ACK_IDS_PER_CALL):
            chunk = leftover[start : start + MAX_ACK_IDS_PER_CALL]
            try:
                self._subscriber.modify_ack_deadline(
                    subscription=consumer.path, ack_ids=chunk, ack_deadline_seconds=0
                )
            except Exception:  # the subscription may be gone; the leases simply run out
                break

    def close(self) -> None:
        """End the streams, nack unsettled deliveries, flush the publisher, close the clients."""
        with self._lock:
            if self._closed:
                return
            consumers = list(self._consumers.values())
        for consumer in consumers:
            self._release(consumer)
        with self._lock:
            self._closed = True
            if self._subscriber is not None:
                self._subscriber.close()
            if self._publisher is not None:
                self._publisher.stop()


_UNREADABLE = CloudEvent(
    {"id": "unreadable", "source": "/polybus/gcp", "type": "polybus.unreadable"}
)
