"""The azure adapter: Event Grid through azure-eventgrid / azure-core, by namespace pull or webhook push.

Publish encodes each event once to the CloudEvents JSON format
(mapping.encode), checks every size against Event Grid's 1 MB before any
network call, and posts JSON batches of at most 1 MB through the SDK's
pipeline (auth, retries, timeouts): namespace topics by default
(``EventGridPublisherClient.send_request``), basic topics with ``namespace =
false``. With ``delivery = "pull"`` (default) subscriptions are namespace
event subscriptions read with ``EventGridConsumerClient``; with ``delivery =
"push"`` they are basic-topic webhook subscriptions delivering to a receiver
the adapter runs (see delivery.py for both).

Only with ``admin = true`` (the polybus emulator) does the adapter create
topics and subscriptions, through the emulator's admin API
(provisioning.py); against real Azure no admin client exists, resources come
from ARM, every filter is evaluated client-side and `provision` only checks
that a pull subscription exists.

Portable delivery counts above Event Grid's native 10 (pull): each such
subscription gets a private redelivery topic (``<subscription>-redelivery``,
pull subscription ``redeliveries``). A nack on the native 10th delivery,
while portable attempts remain, publishes a stamped copy there (see
mapping.stamp_copy) and acknowledges the original; receive reads both
subscriptions, strips the stamps and numbers the copy's deliveries on. The
copy goes to a topic of its own, so sibling subscriptions never see it twice.

Recovery (with ``admin = true``): when the emulator restarts and forgets its
topics and subscriptions, a publish answered 404 re-creates the topic and
posts again, a receive answered 404 re-creates the subscription it was
provisioned with (its topics included), and provisioning again re-creates
whatever the adapter believed existed. `close` is bounded by `close_timeout`
(default 5 s) even when the endpoint no longer answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core import PipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.pipeline.policies import (
    AzureKeyCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.arm import ArmProvisioner
from polybus.adapters.azure.config import AzureConfig
from polybus.adapters.azure.delivery import NAMESPACE_API_VERSION, Budget, PullConsumer
from polybus.adapters.azure.errors import status_of, translate_errors
from polybus.adapters.azure.filters import compile_filter
from polybus.adapters.azure.identity import client_options, make_credential, token_credential
from polybus.adapters.azure.mapping import (
    REDELIVERY_SUBSCRIPTION,
    SIZE_LIMIT,
    batch_body,
    encode,
    encode_wire,
    native_name,
)
from polybus.adapters.azure.monitoring import AzureMonitor
from polybus.adapters.azure.provisioning import (
    DLQ_SUBSCRIPTION,
    MAX_DELIVERY_ATTEMPTS,
    MAX_DELIVERY_COUNT,
    EmulatorAdmin,
    PullRoute,
    Topics,
    check_pull_subscription,
    create_pull,
    create_push,
    delete_pull,
    delete_push,
    pull_backlog,
    pull_route,
)
from polybus.adapters.azure.push import Inbox, PushDeadLetters, PushRoute, WebhookReceiver
from polybus.core.contract import BacklogStats, Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, Problem, PublishError, UnsupportedError
from polybus.core.filters.dialects import Filter

log = logging.getLogger(__name__)

MAX_PUBLISH_BATCH = 1000
MAX_BATCH_BYTES = SIZE_LIMIT.limit  # Event Grid takes 1 MB per request as per event
BASIC_API_VERSION = "2018-01-01"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
_PUBLISH_ERRORS = {401: ClientAuthenticationError, 404: ResourceNotFoundError}


class _Sender:
    """Posts encoded batches to one topic through the SDK's pipeline."""

    def __init__(
        self, config: AzureConfig, credential: Any, native: str, options: Mapping[str, Any]
    ) -> None:
        self.config = config
        self._client: EventGridPublisherClient | PipelineClient[HttpRequest, HttpResponse]
        if config.namespace:
            self._client = EventGridPublisherClient(
                config.endpoint, credential, namespace_topic=native, **options
            )
            self.url = f"/topics/{native}:publish"
            self.params = {"api-version": NAMESPACE_API_VERSION}
        else:  # basic topics: the SDK's basic client takes no raw body, azure-core's pipeline does
            self.url = (
                native if native.startswith("http") else f"{config.endpoint}/{native}/api/events"
            )
            self._client = PipelineClient(
                self.url,
                policies=[
                    HeadersPolicy(),
                    UserAgentPolicy(sdk_moniker="polybus-eventgrid"),
                    RetryPolicy(),
                    AzureKeyCredentialPolicy(credential, "aeg-sas-key"),
                ],
            )
            self.params = {"api-version": BASIC_API_VERSION}

    def post(self, body: bytes) -> None:
        """POST one JSON batch; raises the SDK's HttpResponseError unless Event Grid says 200."""
        request = HttpRequest(
            "POST",
            self.url,
            params=self.params,
            headers={"Content-Type": BATCH_CONTENT_TYPE},
            content=body,
        )
        response = self._client.send_request(
            request,
            retry_total=self.config.retries,
            connection_timeout=self.config.timeout,
            read_timeout=self.config.timeout,
        )
        if response.status_code != 200:
            map_error(
                status_code=response.status_code, response=response, error_map=_PUBLISH_ERRORS
            )
            raise HttpResponseError(response=response)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()


def _chunks(encoded: list[bytes]) -> list[tuple[int, int]]:
    """(start, end) ranges of at most MAX_PUBLISH_BATCH events and MAX_BATCH_BYTES of body."""
    ranges, start, size = [], 0, 2
    for i, item in enumerate(encoded):
        grown = size + len(item) + (1 if i > start else 0)
        if i > start and (grown > MAX_BATCH_BYTES or i - start >= MAX_PUBLISH_BATCH):
            ranges.append((start, i))
            start, grown = i, 2 + len(item)
        size = grown
    if encoded:
        ranges.append((start, len(encoded)))
    return ranges


class AzureAdapter:
    """Event Grid through the azure-eventgrid SDK (see the module docstring)."""

    name = "azure"

    def __init__(self, config: AzureConfig) -> None:
        self.config = config
        self.credential = make_credential(config)  # an access key, or Entra ID
        self._client_options = client_options(config, self.credential)
        arm_credential = (
            (self.credential if config.credential == "default" else token_credential())
            if config.arm
            else None
        )
        self.arm = (  # real Azure: topics and subscriptions through Azure Resource Manager
            ArmProvisioner(
                arm_credential,
                config.arm_subscription,
                config.arm_resource_group,
                config.arm_namespace,
                config.arm_endpoint,
                config.arm_dead_letter_container,
            )
            if config.arm
            else None
        )
        self.monitor = (  # real Azure: the lag gauge from Azure Monitor's namespace metrics
            AzureMonitor(
                arm_credential,
                config.arm_subscription,
                config.arm_resource_group,
                config.arm_namespace,
                config.arm_endpoint,
            )
            if config.arm
            else None
        )
        # The emulator's management API exists only when the config says so.
        self.admin = (
            EmulatorAdmin(config.endpoint, config.key, config.timeout) if config.admin else None
        )
        self._topics = Topics(self.admin, config.namespace) if self.admin is not None else None
        self._senders: dict[str, _Sender] = {}
        self._routes: dict[str, PullRoute] = {}
        self._budgets: dict[str, Budget] = {}
        self._turn = 0
        self._consumers: dict[tuple[str, str], PullConsumer] = {}
        self._push_routes: dict[str, PushRoute] = {}
        self._receiver: WebhookReceiver | None = None
        self._dead_letters = PushDeadLetters(self.admin) if self.admin is not None else None
        self._specs: dict[str, tuple[SubscriptionSpec, Mapping[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    @property
    def push(self) -> bool:
        """Whether subscriptions are webhook (push) subscriptions."""
        return self.config.delivery == "push"

    # -- publish --------------------------------------------------------------
    def topic_name(self, topic: str) -> str:
        """The Event Grid topic (or, for basic topics without admin, endpoint) for `topic`."""
        return self.config.topics.get(topic) or native_name(topic)

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Encode once, refuse oversized events before the network, post batches of <= 1 MB."""
        if not events:
            return
        encoded = [encode(e) for e in events]
        ids = [e.get_id() for e in events]
        SIZE_LIMIT.check(zip(ids, map(len, encoded), strict=True), self.name)
        native = self.topic_name(topic)
        if self._topics is not None:
            self._topics.ensure(native)
        elif self.arm is not None:
            self.arm.ensure_topic(native)
        sender = self._sender(native)
        for start, end in _chunks(encoded):
            self._post(sender, native, ids[start:end], encoded[start:end])

    def _post(self, sender: _Sender, native: str, ids: list[str], encoded: list[bytes]) -> None:
        try:
            with translate_errors(f"publish to {native}", ids):
                sender.post(batch_body(encoded))
        except PublishError as exc:
            if status_of(exc) == 404 and self._topics is None and self.arm is None:
                hint = (
                    f"azure: topic {native!r} does not exist (404): create it (polybus provision "
                    "--dry-run --format bicep), set arm_subscription, arm_resource_group and "
                    "arm_namespace to let polybus create it, or admin = true on the polybus emulator"
                )
                raise PublishError(dict.fromkeys(ids, hint)) from exc
            if status_of(exc) == 404 and self._topics is not None:  # emulator restarted: re-create
                self._topics.forget(native)
                self._topics.ensure(native)
                with translate_errors(f"publish to {native}", ids):
                    sender.post(batch_body(encoded))
                return
            if status_of(exc) != 413 or len(encoded) < 2:
                raise
            half = len(encoded) // 2  # the service counted more than we did: split and retry
            self._post(sender, native, ids[:half], encoded[:half])
            self._post(sender, native, ids[half:], encoded[half:])

    def _sender(self, native: str) -> _Sender:
        with self._lock:
            sender = self._senders.get(native)
            if sender is None:
                sender = self._senders[native] = _Sender(
                    self.config, self.credential, native, self._client_options
                )
            return sender

    # -- subscriptions --------------------------------------------------------
    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create/update the subscription (admin) or check it exists; returns the residual filter."""
        if not self.config.namespace and not self.push:
            raise AdapterError(
                'azure: basic topics deliver by push only: set delivery = "push", '
                "or use namespace topics for pull subscriptions"
            )
        topic, sub = self.topic_name(spec.topic), native_name(spec.name)
        compiled = compile_filter(spec.filter)
        native_filter = compiled.native if isinstance(compiled.native, Mapping) else None
        residual = compiled.residual if native_filter is not None else spec.filter
        if self._topics is None and self.arm is None:  # made elsewhere: filter client-side
            native_filter, residual = None, spec.filter
        if self.push:
            self._provision_push(spec, topic, sub, native_filter)
            return residual
        route = pull_route(spec, topic, sub, admin=self._topics is not None)
        if self._topics is not None:
            create_pull(self._topics, route, spec, native_filter)
            self._specs[spec.name] = (spec, native_filter)
        elif self.arm is not None:
            self._provision_arm(route, spec, native_filter)
        else:
            for topic_name, sub_name in route.consumers():
                client = self._consumer(topic_name, sub_name).client
                check_pull_subscription(client, topic_name, sub_name)
        self._routes[spec.name] = route
        budget = self._budgets[spec.name] = self._budget(route)
        for topic_sub in route.consumers():
            consumer = self._consumers.get(topic_sub)
            if consumer is not None:
                consumer.budget = budget
        return residual

    def _provision_arm(
        self, route: PullRoute, spec: SubscriptionSpec, native_filter: Mapping[str, Any] | None
    ) -> None:
        """Real Azure: the queue subscription (and any redelivery topic) through ARM."""
        assert self.arm is not None
        lock = spec.policy.ack_deadline
        native_max = min(MAX_DELIVERY_COUNT, route.max_attempts)
        self.arm.put_subscription(
            route.topic,
            route.sub,
            native_filter=native_filter,
            lock_seconds=lock,
            max_delivery_count=native_max,
        )
        if route.redelivery_topic is not None:
            self.arm.put_subscription(
                route.redelivery_topic,
                REDELIVERY_SUBSCRIPTION,
                native_filter=None,
                lock_seconds=lock,
                max_delivery_count=MAX_DELIVERY_COUNT,
            )

    def _provision_push(
        self, spec: SubscriptionSpec, topic: str, sub: str, native_filter: Mapping[str, Any] | None
    ) -> None:
        """Open the inbox, then (admin) create the webhook subscription delivering to it."""
        attempts = spec.policy.max_delivery_attempts
        if attempts > MAX_DELIVERY_ATTEMPTS:
            raise UnsupportedError(
                f"subscription {spec.name!r} asks for more than push delivery allows",
                [Problem("policy.max_delivery_attempts", attempts, "webhooks allow 1..30")],
            )
        receiver = self.receiver
        route = self._push_routes.get(spec.name)
        if route is None or (route.topic, route.sub) != (topic, sub):
            inbox = receiver.inboxes.get(sub) or Inbox(self.config.settle_timeout)
            receiver.inboxes[sub] = inbox
            route = PushRoute(topic, sub, inbox)
        if self._topics is not None:
            create_push(self._topics, spec, topic, sub, receiver.url_for(sub), native_filter)
            self._specs[spec.name] = (spec, native_filter)
        self._push_routes[spec.name] = route

    @property
    def receiver(self) -> WebhookReceiver:
        """The webhook server push subscriptions deliver to, started on first use."""
        with self._lock:
            if self._receiver is None:
                self._receiver = WebhookReceiver(
                    self.config.webhook_host,
                    self.config.webhook_port,
                    self.config.webhook_url,
                    self.config.webhook_secret,
                )
            return self._receiver

    def endpoint_url(self, subscription: str) -> str:
        """The webhook URL to give Event Grid (in ARM) for a push subscription."""
        return self.receiver.url_for(native_name(subscription))

    def _budget(self, route: PullRoute) -> Budget:
        redelivery = route.redelivery_topic
        if redelivery is None:
            return Budget(route.max_attempts, min(MAX_DELIVERY_COUNT, route.max_attempts))

        def republish(copy: dict[str, Any]) -> None:
            with translate_errors(f"republish to {redelivery}"):
                self._sender(redelivery).post(batch_body([encode_wire(copy)]))

        return Budget(route.max_attempts, MAX_DELIVERY_COUNT, republish)

    def _route(self, subscription: str) -> PullRoute:
        route = self._routes.get(subscription)
        if route is None and subscription in self.config.subscriptions:
            topic = self.topic_name(self.config.subscriptions[subscription])
            route = PullRoute(topic, native_name(subscription), None, None, MAX_DELIVERY_COUNT)
        if route is None:
            raise AdapterError(
                f"azure: unknown subscription {subscription!r}: provision it first or list it "
                "under [azure.subscriptions]"
            )
        return route

    def _push_route(self, subscription: str) -> PushRoute:
        route = self._push_routes.get(subscription)
        if route is None:
            raise AdapterError(f"azure: unknown push subscription {subscription!r}: provision it")
        return route

    def _consumer(
        self, topic: str, sub: str, budget: Budget | None = None, *, dead_letters: bool = False
    ) -> PullConsumer:
        with self._lock:
            consumer = self._consumers.get((topic, sub))
            if consumer is None:
                client = EventGridConsumerClient(
                    self.config.endpoint,
                    self.credential,
                    namespace_topic=topic,
                    subscription=sub,
                    retry_total=self.config.retries,
                    connection_timeout=self.config.timeout,
                    **self._client_options,
                )
                consumer = PullConsumer(client, self.config, topic, sub, dead_letters=dead_letters)
                if budget is not None:
                    consumer.budget = budget
                self._consumers[(topic, sub)] = consumer
                self._start_flusher()
            return consumer

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Up to `max_events` deliveries, waiting at most `timeout` seconds (10 s min on Azure)."""
        if self.push:
            inbox = self._push_route(subscription).inbox
            return list(inbox.take(max(1, max_events), timeout))
        try:
            return self._receive_pull(subscription, max_events, timeout)
        except AdapterError as exc:
            if status_of(exc) != 404 or subscription not in self._specs:
                raise
            log.warning("azure: %s is gone (emulator restarted?); re-creating it", subscription)
            self._reprovision(subscription)
            raise

    def _reprovision(self, subscription: str) -> None:
        """Re-create a subscription this adapter provisioned (its topics included), once asked."""
        spec, native_filter = self._specs[subscription]
        route = self._routes.get(subscription)
        if self._topics is None or route is None:
            return
        for topic in (route.topic, route.dlq_topic, route.redelivery_topic):
            if topic is not None:
                self._topics.forget(topic)
        create_pull(self._topics, route, spec, native_filter)

    def _receive_pull(self, subscription: str, max_events: int, timeout: float) -> list[Delivery]:
        route = self._route(subscription)
        budget = self._budgets.get(subscription)
        if budget is None:
            budget = self._budgets[subscription] = self._budget(route)
        main = self._consumer(route.topic, route.sub, budget)
        if route.redelivery_topic is None:
            return list(main.receive(max_events, timeout))
        copies = self._consumer(route.redelivery_topic, REDELIVERY_SUBSCRIPTION, budget)
        if not self.config.admin:  # Azure waits >= 10 s per receive: take turns
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
        """Dead letters kept by the emulator (Azure writes them to Blob storage)."""
        if self.push:
            route = self._push_route(subscription)
            if self._dead_letters is None:
                raise AdapterError(
                    "azure: Event Grid dead-letters webhook events to Azure Blob storage; read "
                    "them there (receive_dead_letters works against the emulator)"
                )
            return self._dead_letters.receive(route, max_events, timeout)
        dlq_topic = self._route(subscription).dlq_topic
        if dlq_topic is None:
            raise AdapterError(
                "azure: Event Grid dead-letters namespace events to Azure Blob storage; "
                "read them there (receive_dead_letters works against the emulator)"
            )
        consumer = self._consumer(dlq_topic, DLQ_SUBSCRIPTION, dead_letters=True)
        return list(consumer.receive(max_events, timeout))

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """The lag gauge of a pull subscription: the emulator's admin API, or Azure Monitor.

        With `admin` (the emulator) the figures are exact queue depths. With
        the ARM settings (real Azure) they are derived from Azure Monitor's
        namespace metrics (monitoring.py): backlog including locked events,
        dead-lettered count, and None for in-flight and oldest age, which
        Azure does not expose. Push subscriptions, and pull subscriptions
        with neither, raise UnsupportedError naming the settings to add.
        """
        if self.push:
            raise UnsupportedError(
                "azure backlog",
                [
                    Problem(
                        "backlog_stats",
                        subscription,
                        "the lag gauge reads pull (namespace queue) subscriptions only, "
                        "not webhook (push) ones",
                    )
                ],
            )
        route = self._route(subscription)
        if self.admin is not None:
            with translate_errors(f"read the backlog of {subscription}"):
                return pull_backlog(self.admin, route, subscription)
        if self.monitor is not None:
            return self.monitor.backlog(subscription, route.consumers())
        raise UnsupportedError(
            "azure backlog",
            [
                Problem(
                    "backlog_stats",
                    subscription,
                    "Event Grid reports backlog only through Azure Monitor: set "
                    "arm_subscription, arm_resource_group and arm_namespace (real Azure) "
                    "or admin = true (the polybus emulator)",
                )
            ],
        )

    def delete_subscription(self, subscription: str) -> None:
        """Delete the subscription and what was created for it (idempotent)."""
        if self.push:
            push_route = self._push_routes.pop(subscription, None)
            self._specs.pop(subscription, None)
            if push_route is None:
                return
            push_route.inbox.close()
            if self._receiver is not None:
                self._receiver.inboxes.pop(push_route.sub, None)
            if self._topics is not None:
                delete_push(self._topics, push_route.topic, push_route.sub)
            return
        route = self._routes.pop(subscription, None)
        self._budgets.pop(subscription, None)
        self._specs.pop(subscription, None)
        if route is None:
            return
        for key in (*route.consumers(), (route.dlq_topic or "", DLQ_SUBSCRIPTION)):
            with self._lock:
                consumer = self._consumers.pop(key, None)
            if consumer is not None:
                consumer.close()
        if self._topics is not None:
            delete_pull(self._topics, route)

    # -- lifecycle ------------------------------------------------------------
    def flush_acks(self) -> None:
        """Send every queued acknowledgement now (they are batched otherwise)."""
        with self._lock:
            consumers = list(self._consumers.values())
        for consumer in consumers:
            consumer.flush()

    def _start_flusher(self) -> None:
        if self._flusher is None and self.config.ack_flush_interval > 0:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="azure-acks", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.config.ack_flush_interval):
            with self._lock:
                consumers = [c for c in self._consumers.values() if c.pending_acks]
            for consumer in consumers:
                try:
                    consumer.flush()
                except AdapterError as exc:
                    log.warning("azure: background acknowledge failed: %s", exc)

    def close(self) -> None:
        """Flush acks, release unsettled deliveries, stop the webhook, close every client.

        Returns within `close_timeout` (plus the webhook's short shutdown) even
        when the endpoint does not answer: what cannot be settled by then is
        left to Event Grid's lock expiry, which redelivers it.
        """
        deadline = time.monotonic() + self.config.close_timeout
        self._closed.set()
        with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
            senders, self._senders = list(self._senders.values()), {}
            receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
        if self._flusher is not None:
            self._flusher.join(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        for consumer in consumers:
            consumer.close(deadline)
        for sender in senders:
            sender.close()
        if self.arm is not None:
            self.arm.close()
        if self.monitor is not None:
            self.monitor.close()
