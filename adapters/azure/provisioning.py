"""Topics and event subscriptions: created through the emulator's admin API, checked on real Azure.

Real Azure creates topics and subscriptions through ARM (the management
plane: portal, CLI, Bicep), which polybus does not drive. With ``admin = true``
(the polybus emulator) the adapter provisions through `EmulatorAdmin`, a
stdlib client of the emulator's admin API: topics, pull subscriptions with
their dead-letter topic and, above Event Grid's native 10 delivery attempts,
a private redelivery topic; webhook subscriptions for push. Without admin no
admin client exists and nothing emulator-specific runs: `check_pull_subscription`
only verifies through the data plane that a namespace subscription exists.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from azure.eventgrid import EventGridConsumerClient

from polybus.adapters.azure.errors import AdminError, status_of, translate_errors
from polybus.adapters.azure.mapping import (
    REDELIVERY_SUBSCRIPTION,
    native_name,
    redelivery_topic_name,
)
from polybus.core.contract import BacklogStats, SubscriptionSpec
from polybus.core.errors import AdapterError

log = logging.getLogger(__name__)

MAX_DELIVERY_COUNT = 10  # namespace subscriptions: maxDeliveryCount 1..10
MAX_DELIVERY_ATTEMPTS = 30  # webhook subscriptions: maxDeliveryAttempts 1..30
MAX_LOCK_SECONDS = 300.0
ORDERED_BATCH = 100  # events per push request for ordered subscriptions
DLQ_SUBSCRIPTION = "deadletters"
PROBE_TOKEN = "polybus-probe"  # a lock token no subscription holds


class EmulatorAdmin:
    """Create, inspect and delete emulator topics and subscriptions."""

    def __init__(self, endpoint: str, key: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.key = key
        self.timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Send one admin request; returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.endpoint + path,
            data=data,
            method=method,
            headers={"aeg-sas-key": self.key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = _error_detail(exc.read())
            raise AdminError(exc.code, *detail) from None
        except (OSError, ValueError) as exc:  # refused, reset, timed out: no HTTP answer
            raise AdminError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError as exc:
            raise AdminError(0, "BadResponse", f"answer is not JSON: {exc}") from exc

    # -- namespace topics -----------------------------------------------------
    def put_namespace_topic(self, topic: str) -> None:
        """Create a namespace topic (idempotent)."""
        self.request("PUT", f"/admin/namespace/topics/{_q(topic)}")

    def delete_namespace_topic(self, topic: str) -> None:
        """Delete a namespace topic and its subscriptions."""
        self.request("DELETE", f"/admin/namespace/topics/{_q(topic)}")

    def put_pull_subscription(
        self,
        topic: str,
        name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        max_delivery_count: int = 10,
        lock_duration: float = 60.0,
        dead_letter_topic: str | None = None,
    ) -> dict[str, Any]:
        """Create or update a pull subscription; returns its description."""
        body = {
            "filter": filter,
            "maxDeliveryCount": max_delivery_count,
            "lockDurationInSeconds": lock_duration,
            "deadLetterTopic": dead_letter_topic,
        }
        return dict(self.request("PUT", _ns_sub(topic, name), body))

    def pull_subscription(self, topic: str, name: str) -> dict[str, Any]:
        """A pull subscription's settings and queue depths."""
        return dict(self.request("GET", _ns_sub(topic, name)))

    def delete_pull_subscription(self, topic: str, name: str) -> None:
        """Delete a pull subscription (idempotent)."""
        self.request("DELETE", _ns_sub(topic, name))

    def pull_dead_letters(self, topic: str, name: str) -> list[dict[str, Any]]:
        """Dead-letter records (``event`` plus ``deadLetterProperties``)."""
        return list(self.request("GET", _ns_sub(topic, name) + "/deadletters")["value"])

    # -- basic topics -----------------------------------------------------------
    def put_basic_topic(self, topic: str, input_schema: str = "CloudEventSchemaV1_0") -> str:
        """Create a basic topic; returns its publish endpoint."""
        answer = self.request(
            "PUT", f"/admin/basic/topics/{_q(topic)}", {"inputSchema": input_schema}
        )
        return str(answer["endpoint"])

    def delete_basic_topic(self, topic: str) -> None:
        """Delete a basic topic and its subscriptions."""
        self.request("DELETE", f"/admin/basic/topics/{_q(topic)}")

    def put_webhook_subscription(
        self,
        topic: str,
        name: str,
        endpoint_url: str,
        *,
        filter: Mapping[str, Any] | None = None,
        max_delivery_attempts: int = 30,
        ttl_minutes: float = 1440.0,
        dead_letter: bool = False,
        max_events_per_batch: int = 1,
    ) -> dict[str, Any]:
        """Create or update a webhook subscription (the emulator runs the handshake)."""
        body = {
            "endpointUrl": endpoint_url,
            "filter": filter,
            "maxDeliveryAttempts": max_delivery_attempts,
            "eventTimeToLiveInMinutes": ttl_minutes,
            "deadLetter": dead_letter,
            "maxEventsPerBatch": max_events_per_batch,
        }
        return dict(self.request("PUT", _basic_sub(topic, name), body))

    def webhook_subscription(self, topic: str, name: str) -> dict[str, Any]:
        """A webhook subscription's settings and provisioning state."""
        return dict(self.request("GET", _basic_sub(topic, name)))

    def delete_webhook_subscription(self, topic: str, name: str) -> None:
        """Delete a webhook subscription (idempotent)."""
        self.request("DELETE", _basic_sub(topic, name))

    def webhook_dead_letters(self, topic: str, name: str) -> list[dict[str, Any]]:
        """Dead-lettered events with the documented dead-letter fields."""
        return list(self.request("GET", _basic_sub(topic, name) + "/deadletters")["value"])

    def delete_webhook_dead_letter(self, topic: str, name: str, event_id: str) -> None:
        """Remove one dead letter (the oldest with `event_id`) once it has been processed."""
        self.request("DELETE", _basic_sub(topic, name) + f"/deadletters/{_q(event_id)}")

    def webhook_deliveries(self, topic: str, name: str) -> list[dict[str, Any]]:
        """The delivery-attempt log: attempt, status, outcome, time, next (unscaled) delay."""
        return list(self.request("GET", _basic_sub(topic, name) + "/deliveries")["value"])


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


def pull_backlog(admin: EmulatorAdmin, route: PullRoute, name: str) -> BacklogStats:
    """The emulator's queue depths for a pull subscription, its redeliveries and dead letters.

    The emulator's admin API reports ready, delayed and locked counts and the
    oldest unsettled publish time; a redelivered copy counts from the time it
    was republished. The dead-letter depth is what waits in the dead-letter
    topic's subscription (a dead-letter name shared by several subscriptions
    reports its whole depth).
    """
    views = [admin.pull_subscription(topic, sub) for topic, sub in route.consumers()]
    dead = (
        admin.pull_subscription(route.dlq_topic, DLQ_SUBSCRIPTION)
        if route.dlq_topic is not None
        else {}
    )
    stamps = [view["oldestPublishTime"] for view in views if view.get("oldestPublishTime")]
    oldest = min((datetime.fromisoformat(stamp).timestamp() for stamp in stamps), default=None)
    return BacklogStats(
        name,
        undelivered=sum(int(v.get("ready", 0)) + int(v.get("delayed", 0)) for v in views),
        in_flight=sum(int(v.get("locked", 0)) for v in views),
        oldest_age=None if oldest is None else max(0.0, time.time() - oldest),
        dead_letters=sum(int(dead.get(key, 0)) for key in ("ready", "delayed", "locked")),
    )


def pull_route(spec: SubscriptionSpec, topic: str, sub: str, *, admin: bool) -> PullRoute:
    """The route of a pull subscription (dead-letter topic only where polybus creates it)."""
    max_attempts = spec.policy.max_delivery_attempts
    return PullRoute(
        topic,
        sub,
        native_name(spec.policy.dead_letter_name(spec.name)) if admin else None,
        native_name(redelivery_topic_name(spec.name))
        if max_attempts > MAX_DELIVERY_COUNT
        else None,
        max_attempts,
    )


class Topics:
    """Creates topics through the admin API once each (namespace or basic topics)."""

    def __init__(self, admin: EmulatorAdmin, namespace: bool) -> None:
        self.admin = admin
        self.namespace = namespace
        self.known: set[str] = set()

    def ensure(self, native: str) -> None:
        """Create `native` unless this adapter already did."""
        if native in self.known:
            return
        with translate_errors(f"create topic {native}"):
            if self.namespace:
                self.admin.put_namespace_topic(native)
            else:
                self.admin.put_basic_topic(native)
        self.known.add(native)

    def forget(self, native: str) -> None:
        """Believe no longer that `native` exists (the emulator restarted): ensure re-creates it."""
        self.known.discard(native)

    def delete(self, native: str) -> None:
        """Delete a namespace topic and forget it."""
        with translate_errors(f"delete topic {native}"):
            self.admin.delete_namespace_topic(native)
        self.known.discard(native)


def create_pull(
    topics: Topics,
    route: PullRoute,
    spec: SubscriptionSpec,
    native_filter: Mapping[str, Any] | None,
) -> None:
    """Create or update the pull subscription, its dead-letter and redelivery topics (emulator)."""
    admin = topics.admin
    lock = min(MAX_LOCK_SECONDS, spec.policy.ack_deadline)
    native_max = min(MAX_DELIVERY_COUNT, route.max_attempts)
    assert route.dlq_topic is not None  # always set when polybus provisions
    for topic in (route.topic, route.dlq_topic, route.redelivery_topic):
        if topic is not None:
            topics.ensure(topic)
    try:
        _put_pull(admin, route, spec, native_filter, lock, native_max)
    except AdapterError as exc:  # a topic we made is gone (emulator restarted): make it again
        if status_of(exc) != 404:
            raise
        for topic in (route.topic, route.dlq_topic, route.redelivery_topic):
            if topic is not None:
                topics.forget(topic)
                topics.ensure(topic)
        _put_pull(admin, route, spec, native_filter, lock, native_max)


def _put_pull(
    admin: EmulatorAdmin,
    route: PullRoute,
    spec: SubscriptionSpec,
    native_filter: Mapping[str, Any] | None,
    lock: float,
    native_max: int,
) -> None:
    assert route.dlq_topic is not None
    with translate_errors(f"provision {spec.name}"):
        admin.put_pull_subscription(route.dlq_topic, DLQ_SUBSCRIPTION)
        admin.put_pull_subscription(
            route.topic,
            route.sub,
            filter=native_filter,
            max_delivery_count=native_max,
            lock_duration=lock,
            dead_letter_topic=route.dlq_topic,
        )
        if route.redelivery_topic is not None:
            admin.put_pull_subscription(
                route.redelivery_topic,
                REDELIVERY_SUBSCRIPTION,
                max_delivery_count=MAX_DELIVERY_COUNT,
                lock_duration=lock,
                dead_letter_topic=route.dlq_topic,
            )


def delete_pull(topics: Topics, route: PullRoute) -> None:
    """Delete the pull subscription and the topics created for it (emulator; idempotent)."""
    with translate_errors(f"delete subscription {route.sub}"):
        topics.admin.delete_pull_subscription(route.topic, route.sub)
    for topic in (route.dlq_topic, route.redelivery_topic):
        if topic:
            topics.delete(topic)


def create_push(
    topics: Topics,
    spec: SubscriptionSpec,
    topic: str,
    sub: str,
    endpoint_url: str,
    native_filter: Mapping[str, Any] | None,
) -> None:
    """Create or update a webhook subscription delivering to `endpoint_url` (emulator)."""
    topics.ensure(topic)
    try:
        _put_webhook(topics, spec, topic, sub, endpoint_url, native_filter)
    except AdapterError as exc:  # the topic we made is gone (emulator restarted): make it again
        if status_of(exc) != 404:
            raise
        topics.forget(topic)
        topics.ensure(topic)
        _put_webhook(topics, spec, topic, sub, endpoint_url, native_filter)


def _put_webhook(
    topics: Topics,
    spec: SubscriptionSpec,
    topic: str,
    sub: str,
    endpoint_url: str,
    native_filter: Mapping[str, Any] | None,
) -> None:
    with translate_errors(f"provision {spec.name}"):
        topics.admin.put_webhook_subscription(
            topic,
            sub,
            endpoint_url,
            filter=native_filter,
            max_delivery_attempts=spec.policy.max_delivery_attempts,
            dead_letter=True,
            max_events_per_batch=ORDERED_BATCH if spec.policy.ordered else 1,
        )


def delete_push(topics: Topics, topic: str, sub: str) -> None:
    """Delete a webhook subscription (emulator; idempotent)."""
    with translate_errors(f"delete subscription {sub}"):
        topics.admin.delete_webhook_subscription(topic, sub)


def check_pull_subscription(client: EventGridConsumerClient, topic: str, sub: str) -> None:
    """Verify through the data plane that a namespace subscription exists (real Azure).

    Acknowledging a lock token nobody holds changes nothing: an existing
    subscription answers 200 with the token among the failed ones, a missing
    topic or subscription answers 404, which becomes an AdapterError naming it.
    """
    try:
        with translate_errors(f"check subscription {topic}/{sub}"):
            client.acknowledge(lock_tokens=[PROBE_TOKEN])
    except AdapterError as exc:
        status = status_of(exc)
        if status == 404:
            raise AdapterError(
                f"azure: event subscription {sub!r} of namespace topic {topic!r} does not exist: "
                "create it in Azure (portal, CLI or ARM); polybus creates topics and "
                "subscriptions only on its emulator (admin = true)"
            ) from exc.__cause__
        if status is None or status in (401, 403):
            raise
        log.debug("azure: probe of %s/%s answered HTTP %s: it exists", topic, sub, status)


def _q(name: str) -> str:
    return quote(name, safe="")


def _ns_sub(topic: str, name: str) -> str:
    return f"/admin/namespace/topics/{_q(topic)}/eventsubscriptions/{_q(name)}"


def _basic_sub(topic: str, name: str) -> str:
    return f"/admin/basic/topics/{_q(topic)}/eventsubscriptions/{_q(name)}"


def _error_detail(raw: bytes) -> tuple[str, str]:
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "Error", raw.decode("utf-8", "replace")[:200]
