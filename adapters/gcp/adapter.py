"""The Google Cloud Pub/Sub adapter: CloudEvents over topics and streaming-pull subscriptions.

Publishing encodes each event once with the CloudEvents Pub/Sub binding
(binary mode unless configured otherwise), checks every message's size
against Pub/Sub's limit before any network call, and hands the messages to
the batching PublisherClient; a topic is created on first use and
remembered. Provisioning (provisioning.py) creates the topic, the
dead-letter topic and its subscription, and the subscription with the native
filter, dead-letter and retry policies. Receiving leases with unary Pull,
only as many messages as asked for (delivery.py); close() nacks whatever was
received but not settled and flushes the publisher, within CLOSE_TIMEOUT
seconds even when the endpoint does not answer: nothing is lost.

Recovery: a subscription this adapter provisioned that has vanished (an
emulator restarted, someone deleted it) is provisioned again from its spec on
the next receive; a vanished topic is created again on the next publish.
Transport failures surface as AdapterError at once (Pull is not retried
here), so the caller's loop backs off and tries again; the emulator channel
reconnects within about a second once the endpoint is back.

With `emulator_host` set, the clients get an insecure channel to it and
anonymous credentials, exactly what the client does for PUBSUB_EMULATOR_HOST,
but without changing the process environment (other clients in the process
keep their endpoint). The channel lifts gRPC's 4 MiB receive limit, as the
client's own channels do.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import grpc
from cloudevents.core.v1.event import CloudEvent
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1
from google.protobuf import timestamp_pb2
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from polybus.adapters.gcp import provisioning
from polybus.adapters.gcp.config import GcpConfig
from polybus.adapters.gcp.delivery import REASON_ATTRIBUTE, PullConsumer, deliveries
from polybus.adapters.gcp.errors import is_not_found, translate_errors
from polybus.adapters.gcp.filters import compile_filter
from polybus.adapters.gcp.mapping import (
    SIZE_LIMIT,
    message_size,
    subscription_path,
    to_message,
    topic_path,
)
from polybus.adapters.gcp.monitoring import MONITORING_ENDPOINT, CloudMonitoring, make_session
from polybus.core.contract import BacklogStats, Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, PublishError
from polybus.core.filters.dialects import Filter

MAX_ACK_IDS_PER_CALL = 1000
CLOSE_TIMEOUT = 5.0  # close() returns within this even against an unresponsive endpoint
EMULATOR_BACKLOG = "/polybus.emulator.Admin/Backlog"  # polybus-only; never on real Pub/Sub
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # A restarted emulator is reached again within a second, not after gRPC's 2-minute backoff cap.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
log = logging.getLogger("polybus.gcp")

Encoded = tuple[bytes, dict[str, str], str]  # data, attributes, ordering key


def make_publisher(config: GcpConfig) -> Any:
    """A PublisherClient with the configured batching (and ordering when enabled)."""
    batch = pubsub_v1.types.BatchSettings(
        max_messages=config.batch_max_messages,
        max_bytes=config.batch_max_bytes,
        max_latency=config.batch_max_latency,
    )
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=config.ordering_keys)
    kwargs: dict[str, Any] = {}
    if config.emulator_host:
        channel = grpc.insecure_channel(config.emulator_host, options=_CHANNEL_OPTIONS)
        kwargs["transport"] = PublisherGrpcTransport(
            channel=channel, host=config.emulator_host, credentials=AnonymousCredentials()
        )
        kwargs["client_options"] = {"api_endpoint": config.emulator_host}
    return pubsub_v1.PublisherClient(batch_settings=batch, publisher_options=options, **kwargs)


def make_subscriber(config: GcpConfig) -> Any:
    """A SubscriberClient (streaming pull, acks, administration of subscriptions)."""
    kwargs: dict[str, Any] = {}
    if config.emulator_host:
        channel = grpc.insecure_channel(config.emulator_host, options=_CHANNEL_OPTIONS)
        kwargs["transport"] = SubscriberGrpcTransport(
            channel=channel, host=config.emulator_host, credentials=AnonymousCredentials()
        )
        kwargs["client_options"] = {"api_endpoint": config.emulator_host}
    return pubsub_v1.SubscriberClient(**kwargs)


class GcpAdapter:
    """polybus on Google Cloud Pub/Sub (or the polybus emulator)."""

    name = "gcp"

    def __init__(self, config: GcpConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._publisher: Any = None
        self._subscriber: Any = None
        self._known_topics: set[str] = set()
        self._routes: dict[str, provisioning.Route] = {}
        self._consumers: dict[str, PullConsumer] = {}
        self._specs: dict[str, SubscriptionSpec] = {}
        self._monitoring: CloudMonitoring | None = None  # backlog_stats without the emulator
        self._closed = False

    # -- clients ----------------------------------------------------------------

    @property
    def publisher(self) -> Any:
        """The PublisherClient, created on first use."""
        with self._lock:
            self._check_open()
            if self._publisher is None:
                with translate_errors("create the publisher client"):
                    self._publisher = make_publisher(self.config)
            return self._publisher

    @property
    def subscriber(self) -> Any:
        """The SubscriberClient, created on first use."""
        with self._lock:
            self._check_open()
            if self._subscriber is None:
                with translate_errors("create the subscriber client"):
                    self._subscriber = make_subscriber(self.config)
            return self._subscriber

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("gcp: adapter is closed")

    # -- publishing -------------------------------------------------------------

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish a batch; EventTooLargeError before the network, PublishError per refused event."""
        encoded = [self._encode(event) for event in events]
        SIZE_LIMIT.check(
            (
                (event.get_id(), message_size(data, attributes))
                for event, (data, attributes, _) in zip(events, encoded, strict=True)
            ),
            self.name,
        )
        path = topic_path(self.config.project, topic)
        self._ensure_topic(path)
        failures = self._publish_encoded(path, encoded)
        if any(isinstance(exc, NotFound) for exc in failures.values()):
            # The topic was deleted behind our back: create it again, retry once.
            self._known_topics.discard(path)
            self._ensure_topic(path)
            retry = [i for i, exc in failures.items() if isinstance(exc, NotFound)]
            again = self._publish_encoded(path, [encoded[i] for i in retry])
            for j, exc in again.items():
                failures[retry[j]] = exc
            for i in set(retry) - {retry[j] for j in again}:
                del failures[i]
        if failures:
            raise PublishError({events[i].get_id(): str(exc) for i, exc in failures.items()})

    def _encode(self, event: CloudEvent) -> Encoded:
        data, attributes = to_message(event, self.config.content_mode, self.config.event_format)
        key = ""
        if self.config.ordering_keys:
            partition = event.get_attributes().get("partitionkey")
            if partition is not None:
                key = partition if type(partition) is str else str(partition)
        return data, attributes, key

    def _publish_encoded(self, path: str, encoded: Sequence[Encoded]) -> dict[int, BaseException]:
        publisher = self.publisher
        futures = []
        with translate_errors(f"publish to {path}"):
            for data, attributes, key in encoded:
                futures.append(publisher.publish(path, data, ordering_key=key, **attributes))
        failures: dict[int, BaseException] = {}
        for i, future in enumerate(futures):
            try:
                future.result(timeout=self.config.publish_timeout)
            except Exception as exc:  # each event's own outcome: reported together as PublishError
                failures[i] = exc
                key = encoded[i][2]
                if key:
                    publisher.resume_publish(path, key)
        return failures

    def _ensure_topic(self, path: str) -> None:
        if path not in self._known_topics:
            provisioning.create_topic(self.publisher, path)
            self._known_topics.add(path)

    # -- provisioning -----------------------------------------------------------

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update the subscription (and its dead-letter topic); return the residual."""
        compiled = compile_filter(spec.filter)
        native = compiled.native if isinstance(compiled.native, str) else None
        if native is not None and self.config.content_mode == "structured":
            # Structured messages carry the event format in content-type, not datacontenttype.
            native = None if "content-type" in native else native
        residual = compiled.residual if native is not None else spec.filter
        plan = provisioning.plan_subscription(
            self.config.project, spec, native, self.config.retain_acked
        )
        self._ensure_topic(plan.topic)
        self._ensure_topic(plan.route.dead_letter_topic)
        provisioning.apply(self.subscriber, plan, self._stop_consumer)
        with self._lock:
            self._routes[spec.name] = plan.route
            self._specs[spec.name] = spec
        return residual

    def delete_subscription(self, subscription: str) -> None:
        """Delete the subscription and its dead-letter subscription and topic (idempotent)."""
        path = subscription_path(self.config.project, subscription)
        self._stop_consumer(path)
        route = self._route(subscription, missing_ok=True)
        self._stop_consumer(route.dead_letter_subscription)
        provisioning.delete(self.publisher, self.subscriber, path, route)
        self._known_topics.discard(route.dead_letter_topic)
        with self._lock:
            self._routes.pop(subscription, None)
            self._specs.pop(subscription, None)

    def _route(self, subscription: str, missing_ok: bool = False) -> provisioning.Route:
        """The dead-letter route of `subscription`: as provisioned here, or looked up once."""
        route = self._routes.get(subscription)
        if route is not None:
            return route
        route = provisioning.lookup_route(
            self.subscriber, self.config.project, subscription, missing_ok
        )
        with self._lock:
            self._routes.setdefault(subscription, route)
        return route

    # -- receiving --------------------------------------------------------------

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Lease up to `max_events` deliveries (one Pull), waiting at most `timeout` for the first."""
        try:
            return self._receive(subscription, max_events, timeout)
        except AdapterError as exc:
            if not is_not_found(exc) or not self._recover(subscription):
                raise
        return self._receive(subscription, max_events, timeout)

    def _receive(self, subscription: str, max_events: int, timeout: float) -> list[Delivery]:
        path = subscription_path(self.config.project, subscription)
        route = self._route(subscription)

        def dead_letter(message: Any, reason: str, attempt: int) -> None:
            self._forward(route.dead_letter_topic, path, message, reason, attempt)

        consumer = self._consumer(path)
        return deliveries(
            consumer, consumer.take(max_events, timeout), dead_letter, route.exhausted_at
        )

    def _recover(self, subscription: str) -> bool:
        """Provision a vanished subscription again from its spec; False when it is not ours."""
        spec = self._specs.get(subscription)
        if spec is None:
            return False
        log.warning("gcp: subscription %s is gone (endpoint restarted?); re-creating it", spec.name)
        with self._lock:
            self._known_topics.clear()
            self._routes.pop(subscription, None)
        self._stop_consumer(subscription_path(self.config.project, subscription))
        self.provision(spec)
        return True

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Deliveries from the dead-letter subscription (`.reason`, `.raw`); ack to remove them.

        A dead letter that is no CloudEvent comes back as a ``polybus.undecodable``
        event carrying the raw data: never dropped, never raised on.
        """
        consumer = self._consumer(self._route(subscription).dead_letter_subscription)
        return deliveries(consumer, consumer.take(max_events, timeout), None, None)

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """Backlog, oldest unacked age and dead-letter depth: Cloud Monitoring, or the emulator.

        Real Pub/Sub publishes these figures only to Cloud Monitoring, read by
        monitoring.py (one to three minutes late; no lease count, so `in_flight`
        is None). With `emulator_host` and no `monitoring_endpoint`, the
        emulator answers a polybus-only admin call instead, exact and with
        the in-flight count.
        """
        route = self._route(subscription)
        if self.config.emulator_host and not self.config.monitoring_endpoint:
            return self._admin_backlog(subscription, route)
        dead_letter = route.dead_letter_subscription.rsplit("/", 1)[-1]
        return self._cloud_monitoring().backlog(subscription, dead_letter)

    def _cloud_monitoring(self) -> CloudMonitoring:
        """The Cloud Monitoring reader, created on first use."""
        with self._lock:
            if self._monitoring is None:
                endpoint = self.config.monitoring_endpoint or MONITORING_ENDPOINT
                self._monitoring = CloudMonitoring(
                    self.config.project, endpoint, make_session(endpoint)
                )
            return self._monitoring

    def _admin_backlog(self, subscription: str, route: provisioning.Route) -> BacklogStats:
        """The emulator's exact figures (its polybus-only Backlog call)."""
        main = self._emulator_backlog(subscription_path(self.config.project, subscription))
        dead = self._emulator_backlog(route.dead_letter_subscription)
        oldest = main["oldest_publish"]
        return BacklogStats(
            subscription,
            undelivered=int(main["undelivered"]),
            in_flight=int(main["in_flight"]),
            oldest_age=None if oldest is None else max(0.0, time.time() - float(oldest)),
            dead_letters=int(dead["undelivered"]) + int(dead["in_flight"]),
        )

    def _emulator_backlog(self, path: str) -> dict[str, Any]:
        """The emulator's polybus-only Backlog call for one subscription path."""
        assert self.config.emulator_host
        with grpc.insecure_channel(self.config.emulator_host) as channel:
            call = channel.unary_unary(
                EMULATOR_BACKLOG,
                request_serializer=lambda name: name.encode("utf-8"),
                response_deserializer=json.loads,
            )
            try:
                answer: dict[str, Any] = call(path, timeout=10.0)
            except grpc.RpcError as exc:
                raise AdapterError(f"gcp: backlog of {path}: {exc.details()}") from exc
        return answer

    def _consumer(self, path: str) -> PullConsumer:
        with self._lock:
            self._check_open()
            consumer = self._consumers.get(path)
            if consumer is None:
                consumer = PullConsumer(
                    self.subscriber,
                    path,
                    self.config.max_outstanding_messages,
                    self.config.max_outstanding_bytes,
                )
                self._consumers[path] = consumer
            return consumer

    def _forward(self, topic: str, source: str, message: Any, reason: str, attempt: int) -> None:
        """Publish a copy of `message` to the dead-letter topic with the reason."""
        attributes = dict(message.attributes)
        attributes[REASON_ATTRIBUTE] = reason.encode("utf-8")[:1024].decode("utf-8", "ignore")
        attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = str(attempt)
        attributes["CloudPubSubDeadLetterSourceSubscription"] = source.rsplit("/", 1)[1]
        self._ensure_topic(topic)
        with translate_errors(f"dead-letter to {topic}"):
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
        with translate_errors(f"seek {path}"):
            self.subscriber.seek(request={"subscription": path, "time": stamp})

    # -- shutdown ---------------------------------------------------------------

    def _stop_consumer(self, path: str) -> None:
        with self._lock:
            consumer = self._consumers.pop(path, None)
        if consumer is not None:
            self._release(consumer)

    def _release(self, consumer: PullConsumer) -> None:
        """Stop a consumer and nack what it held, so it is redelivered at once."""
        self._consumers.pop(consumer.path, None)
        leftover = consumer.close()
        for start in range(0, len(leftover), MAX_ACK_IDS_PER_CALL):
            try:
                consumer.modify(leftover[start : start + MAX_ACK_IDS_PER_CALL], 0)
            except AdapterError:  # the subscription may be gone; the leases simply run out
                break

    def close(self) -> None:
        """Nack unsettled deliveries, flush the publisher, close the clients, within CLOSE_TIMEOUT.

        The work runs on a daemon thread: an endpoint that does not answer
        cannot hold close() longer than the bound (unsettled leases then
        simply run out and the events come back).
        """
        with self._lock:
            if self._closed:
                return
            consumers = list(self._consumers.values())
            self._closed = True
        _bounded(lambda: self._shutdown(consumers), CLOSE_TIMEOUT, "close the gcp adapter")

    def _shutdown(self, consumers: list[PullConsumer]) -> None:
        for consumer in consumers:
            self._release(consumer)
        with translate_errors("close the clients"):
            if self._subscriber is not None:
                self._subscriber.close()
            if self._publisher is not None:
                self._publisher.stop()
        if self._monitoring is not None:
            self._monitoring.close()


def _bounded(work: Callable[[], None], seconds: float, what: str) -> None:
    """Run `work` on a daemon thread; stop waiting for it after `seconds` (logged)."""

    def run() -> None:
        try:
            work()
        except Exception:
            log.warning("%s failed", what, exc_info=True)

    thread = threading.Thread(target=run, name="polybus-gcp-close", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log.warning("%s did not finish within %.0fs; abandoned", what, seconds)
