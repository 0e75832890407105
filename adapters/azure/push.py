"""Push-mode subscriptions of the azure adapter: basic topics delivering to our webhook.

`provision` creates (against the emulator: through its admin API) a webhook
event subscription whose endpoint is the adapter's loopback
`WebhookReceiver`, with dead-lettering on and ``maxDeliveryAttempts`` from
the portable policy (Event Grid allows 1..30; larger counts are capped).
Against real Azure the subscription is created in ARM with the URL from
`PushSubscriptions.endpoint_url` (``webhook_url`` must be reachable from
Azure); `provision` then only opens the inbox.

Dead letters: Event Grid writes them to a storage blob container; the
emulator keeps them behind its admin API, which `receive_dead_letters`
reads. A dead-letter delivery is leased to one receiver until settled: ack
deletes the record (as a reader deletes a processed blob), nack or
dead_letter gives it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.admin import EmulatorAdmin
from polybus.adapters.azure.mapping import from_wire_dict
from polybus.adapters.azure.settings import AzureSettings
from polybus.adapters.azure.webhook_receiver import Inbox, PushDelivery, WebhookReceiver, event_key
from polybus.core.contract import Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 30  # Event Grid's limit for webhook subscriptions
ORDERED_BATCH = 100  # events per push request for ordered subscriptions
DEAD_LETTER_FIELDS = frozenset(
    {
        "deadLetterReason",
        "deliveryAttempts",
        "lastDeliveryOutcome",
        "lastHttpStatusCode",
        "publishTime",
        "lastDeliveryAttemptTime",
    }
)
_POLL = 0.05


@dataclass(frozen=True)
class PushRoute:
    """Where a push subscription lives and the inbox its deliveries arrive in."""

    topic: str
    sub: str
    inbox: Inbox


class DeadLetterDelivery:
    """A dead-lettered event read from the dead-letter destination; ack removes it."""

    __slots__ = ("_owner", "_route", "attempt", "event")

    def __init__(
        self, event: CloudEvent, attempt: int, route: PushRoute, owner: PushSubscriptions
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._route = route
        self._owner = owner

    def ack(self) -> None:
        """Processed: delete the dead-letter record."""
        self._owner.dead_letter_done(self._route, self.event, delete=True)

    def nack(self, delay: float = 0.0) -> None:
        """Give it back to the dead-letter destination (readable again at once)."""
        self._owner.dead_letter_done(self._route, self.event, delete=False)

    def dead_letter(self, reason: str) -> None:
        """It already is dead-lettered: give it back, logging `reason`."""
        log.info("dead letter %s kept: %s", self.event.get_id(), reason)
        self._owner.dead_letter_done(self._route, self.event, delete=False)


class PushSubscriptions:
    """The push half of the azure adapter (see the module docstring)."""

    def __init__(self, settings: AzureSettings, admin: EmulatorAdmin) -> None:
        self.settings = settings
        self.admin = admin
        self.routes: dict[str, PushRoute] = {}
        self._receiver: WebhookReceiver | None = None
        self._leased: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    @property
    def receiver(self) -> WebhookReceiver:
        """The webhook server, started on first use."""
        with self._lock:
            if self._receiver is None:
                self._receiver = WebhookReceiver(
                    self.settings.webhook_host,
                    self.settings.webhook_port,
                    self.settings.webhook_url,
                )
            return self._receiver

    def endpoint_url(self, sub: str) -> str:
        """The webhook URL Event Grid must deliver `sub`'s events to."""
        return self.receiver.url_for(sub)

    def provision(
        self, spec: SubscriptionSpec, topic: str, sub: str, native_filter: Mapping[str, Any] | None
    ) -> None:
        """Open the inbox, then create/update the webhook subscription (emulator)."""
        receiver = self.receiver
        route = self.routes.get(spec.name)
        if route is None or (route.topic, route.sub) != (topic, sub):
            inbox = receiver.inboxes.get(sub) or Inbox(self.settings.settle_timeout)
            receiver.inboxes[sub] = inbox
            route = PushRoute(topic, sub, inbox)
        if self.settings.admin:
            self.admin.put_webhook_subscription(
                topic,
                sub,
                receiver.url_for(sub),
                filter=native_filter,
                max_delivery_attempts=min(MAX_DELIVERY_ATTEMPTS, spec.policy.max_delivery_attempts),
                dead_letter=True,
                max_events_per_batch=ORDERED_BATCH if spec.policy.ordered else 1,
            )
        self.routes[spec.name] = route

    def route(self, subscription: str) -> PushRoute:
        """The provisioned route of `subscription`."""
        route = self.routes.get(subscription)
        if route is None:
            raise AdapterError(f"azure: unknown push subscription {subscription!r}: provision it")
        return route

    def receive(self, subscription: str, max_events: int, timeout: float) -> list[Delivery]:
        """Pushed events waiting in the subscription's inbox."""
        deliveries: list[PushDelivery] = self.route(subscription).inbox.take(
            max(1, max_events), timeout
        )
        return list(deliveries)

    def receive_dead_letters(
        self, subscription: str, max_events: int, timeout: float
    ) -> list[Delivery]:
        """Unleased dead letters of the subscription, polling until `timeout`."""
        route = self.route(subscription)
        if not self.settings.admin:
            raise AdapterError(
                "azure: Event Grid dead-letters webhook events to Azure Blob storage; read them "
                "there (receive_dead_letters works against the emulator)"
            )
        deadline = time.monotonic() + timeout
        while True:
            out = self._take_dead_letters(route, max_events)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))

    def _take_dead_letters(self, route: PushRoute, max_events: int) -> list[Delivery]:
        out: list[Delivery] = []
        for record in self.admin.webhook_dead_letters(route.topic, route.sub):
            event = from_wire_dict({k: v for k, v in record.items() if k not in DEAD_LETTER_FIELDS})
            if route.inbox.was_acked(event_key(event)):  # acked member of a refused batch
                self.admin.delete_webhook_dead_letter(route.topic, route.sub, event.get_id())
                continue
            lease = (route.sub, event.get_source(), event.get_id())
            with self._lock:
                if lease in self._leased:
                    continue
                self._leased.add(lease)
            attempts = int(record.get("deliveryAttempts") or 1)
            out.append(DeadLetterDelivery(event, attempts, route, self))
            if len(out) >= max_events:
                break
        return out

    def dead_letter_done(self, route: PushRoute, event: CloudEvent, *, delete: bool) -> None:
        """End a dead letter's lease, deleting the record when it was processed."""
        lease = (route.sub, event.get_source(), event.get_id())
        with self._lock:
            if lease not in self._leased:
                raise AdapterError(f"dead letter {event.get_id()} is already settled")
            self._leased.discard(lease)
        if delete:
            self.admin.delete_webhook_dead_letter(route.topic, route.sub, event.get_id())

    def delete(self, subscription: str) -> None:
        """Delete the webhook subscription and close its inbox (idempotent)."""
        route = self.routes.pop(subscription, None)
        if route is None:
            return
        route.inbox.close()
        if self._receiver is not None:
            self._receiver.inboxes.pop(route.sub, None)
        if self.settings.admin:
            self.admin.delete_webhook_subscription(route.topic, route.sub)

    def close(self) -> None:
        """Answer open requests with a retryable status and stop the webhook server."""
        with self._lock:
            receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.close()
