"""Basic topics with push delivery to webhooks, as the emulator runs them.

A webhook subscription is validated when it is created: Event Grid schema
subscriptions get a ``Microsoft.EventGrid.SubscriptionValidationEvent`` POST
that must be echoed back as ``{"validationResponse": code}`` (or confirmed by
a GET on the validationUrl); CloudEvents schema subscriptions get the
CloudEvents abuse-protection OPTIONS request and must answer with
``WebHook-Allowed-Origin``. Deliveries follow the documented retry schedule
(10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h, then every 12 h, randomised)
multiplied by the emulator's time scale, up to maxDeliveryAttempts and the
event time-to-live. 400, 401, 403 and 413 answers are not retried. Events
that give up are dead-lettered (when the subscription asks for it) with the
documented fields, or dropped.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import aiohttp

from polybus.adapters.azure.emulator.filter import EventPredicate, compile_subscription_filter
from polybus.adapters.azure.emulator.input_schema import (
    CUSTOM_DELIVERY,
    CUSTOM_SCHEMA,
    InputMapping,
    parse_mapping,
    to_cloudevent,
)
from polybus.adapters.azure.emulator.namespace import BrokerError, utc_iso

CLOUDEVENTS_SCHEMA = "CloudEventSchemaV1_0"
EVENTGRID_SCHEMA = "EventGridSchema"
SCHEMAS = (CLOUDEVENTS_SCHEMA, EVENTGRID_SCHEMA, CUSTOM_SCHEMA)
CUSTOM_DELIVERIES = (CUSTOM_DELIVERY, EVENTGRID_SCHEMA, CLOUDEVENTS_SCHEMA)
RETRY_SCHEDULE = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0)
RETRY_AFTER_SCHEDULE = 43200.0
NOT_RETRIED = frozenset({400, 401, 403, 413})
VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
WEBHOOK_ORIGIN = "eventgrid.azure.net"


def retry_delay(failed_attempts: int, jitter: float, rng: random.Random) -> float:
    """Seconds (unscaled) before the next attempt after `failed_attempts` failures."""
    index = failed_attempts - 1
    base = RETRY_SCHEDULE[index] if index < len(RETRY_SCHEDULE) else RETRY_AFTER_SCHEDULE
    return base * (1.0 + rng.uniform(-jitter, jitter))


@dataclass
class Attempt:
    """One recorded delivery attempt (for the admin API's delivery log)."""

    event_ids: list[str]
    attempt: int
    status: int | None
    outcome: str
    time: str
    next_delay: float | None


@dataclass
class WebhookSubscription:
    """A basic-topic event subscription delivering to a webhook."""

    topic: str
    name: str
    endpoint: str
    schema: str
    filter_spec: Mapping[str, Any] | None = None
    max_attempts: int = 30
    ttl_minutes: float = 1440.0
    dead_letter: bool = False
    max_batch: int = 1
    state: str = "Creating"
    validation_code: str = ""
    matches: EventPredicate = field(default=lambda event: True)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def describe(self) -> dict[str, Any]:
        """Settings and state for the admin API."""
        return {
            "topic": self.topic,
            "name": self.name,
            "endpointUrl": self.endpoint,
            "eventDeliverySchema": self.schema,
            "filter": self.filter_spec,
            "maxDeliveryAttempts": self.max_attempts,
            "eventTimeToLiveInMinutes": self.ttl_minutes,
            "deadLetter": self.dead_letter,
            "maxEventsPerBatch": self.max_batch,
            "provisioningState": self.state,
            "deadLettered": len(self.dead_letters),
        }


class BasicTopics:
    """Basic topics, their webhook subscriptions and the delivery loop."""

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        clock: Callable[[], float],
        base_url: Callable[[], str],
        time_scale: float = 1.0,
        jitter: float = 0.1,
        response_timeout: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.base_url = base_url
        self.time_scale = time_scale
        self.jitter = jitter
        self.response_timeout = response_timeout
        self.rng = random.Random(seed)
        self.schemas: dict[str, str] = {}
        self.mappings: dict[str, InputMapping] = {}  # custom input schema topics
        self.subscriptions: dict[str, dict[str, WebhookSubscription]] = {}

    # -- management ---------------------------------------------------------
    def create_topic(
        self, topic: str, schema: str = CLOUDEVENTS_SCHEMA, mapping: Any = None
    ) -> None:
        """Create a topic with its input schema (idempotent; the schema cannot change).

        `mapping` is the ARM inputSchemaMapping, required with CustomEventSchema.
        """
        if schema not in SCHEMAS:
            raise BrokerError(400, "BadRequest", f"inputSchema must be one of {SCHEMAS}")
        parsed = None
        if schema == CUSTOM_SCHEMA:
            parsed = parse_mapping(mapping)
        elif mapping is not None:
            raise BrokerError(
                400, "BadRequest", f"inputSchemaMapping needs inputSchema {CUSTOM_SCHEMA!r}"
            )
        existing = self.schemas.setdefault(topic, schema)
        if existing != schema:
            raise BrokerError(409, "Conflict", f"topic {topic!r} already uses {existing}")
        if parsed is not None:
            self.mappings.setdefault(topic, parsed)
        self.subscriptions.setdefault(topic, {})

    def delete_topic(self, topic: str) -> None:
        """Delete a topic and stop its subscriptions' deliveries."""
        for sub in self.subscriptions.pop(topic, {}).values():
            _cancel(sub)
        self.schemas.pop(topic, None)
        self.mappings.pop(topic, None)

    async def put_subscription(
        self, topic: str, name: str, config: Mapping[str, Any]
    ) -> WebhookSubscription:
        """Create or update a webhook subscription, running the validation handshake."""
        if topic not in self.schemas:
            raise BrokerError(404, "NotFound", f"basic topic {topic!r} does not exist")
        endpoint = config.get("endpointUrl")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise BrokerError(400, "BadRequest", "endpointUrl must be an http(s) URL")
        max_attempts = int(config.get("maxDeliveryAttempts", 30))
        ttl = float(config.get("eventTimeToLiveInMinutes", 1440))
        if not 1 <= max_attempts <= 30 or not 1 <= ttl <= 1440:
            raise BrokerError(
                400, "BadRequest", "maxDeliveryAttempts is 1..30, eventTimeToLiveInMinutes 1..1440"
            )
        input_schema = self.schemas[topic]
        default_delivery = CUSTOM_DELIVERY if input_schema == CUSTOM_SCHEMA else input_schema
        sub = WebhookSubscription(
            topic,
            name,
            endpoint,
            config.get("eventDeliverySchema") or default_delivery,
            filter_spec=config.get("filter") or None,
            max_attempts=max_attempts,
            ttl_minutes=ttl,
            dead_letter=bool(config.get("deadLetter", False)),
            max_batch=max(1, min(5000, int(config.get("maxEventsPerBatch", 1)))),
        )
        if input_schema == CUSTOM_SCHEMA:
            if sub.schema not in CUSTOM_DELIVERIES:
                raise BrokerError(
                    400, "BadRequest", f"eventDeliverySchema must be one of {CUSTOM_DELIVERIES}"
                )
        elif sub.schema != input_schema:
            raise BrokerError(400, "BadRequest", "eventDeliverySchema must match the topic's")
        sub.matches = compile_subscription_filter(sub.filter_spec)
        old = self.subscriptions[topic].get(name)
        if old is not None and old.endpoint == endpoint and old.state == "Succeeded":
            sub.state = "Succeeded"
        else:
            await self._validate(sub)
        if old is not None:
            sub.dead_letters, sub.attempts = old.dead_letters, old.attempts
            _cancel(old)
        self.subscriptions[topic][name] = sub
        return sub

    def subscription(self, topic: str, name: str) -> WebhookSubscription:
        """The named subscription, or a 404 BrokerError."""
        sub = self.subscriptions.get(topic, {}).get(name)
        if sub is None:
            raise BrokerError(404, "NotFound", f"event subscription {topic}/{name} does not exist")
        return sub

    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription and cancel its pending deliveries (idempotent)."""
        sub = self.subscriptions.get(topic, {}).pop(name, None)
        if sub is not None:
            _cancel(sub)

    def confirm_validation(self, topic: str, name: str, code: str) -> None:
        """The manual handshake: a GET on the validationUrl activates the subscription."""
        sub = self.subscription(topic, name)
        if code != sub.validation_code:
            raise BrokerError(400, "BadRequest", "validation code does not match")
        sub.state = "Succeeded"

    def close(self) -> None:
        """Cancel every pending delivery."""
        for subs in self.subscriptions.values():
            for sub in subs.values():
                _cancel(sub)

    # -- handshake ----------------------------------------------------------
    async def _validate(self, sub: WebhookSubscription) -> None:
        sub.validation_code = str(uuid.uuid4())
        if sub.schema == CLOUDEVENTS_SCHEMA:
            await self._options_handshake(sub)
            sub.state = "Succeeded"
            return
        query = urlencode({"topic": sub.topic, "sub": sub.name, "code": sub.validation_code})
        url = f"{self.base_url()}/admin/validate?{query}"
        event = {
            "id": str(uuid.uuid4()),
            "topic": f"/emulator/topics/{sub.topic}",
            "subject": "",
            "data": {"validationCode": sub.validation_code, "validationUrl": url},
            "eventType": VALIDATION_EVENT_TYPE,
            "eventTime": utc_iso(),
            "metadataVersion": "1",
            "dataVersion": "2",
        }
        headers = {"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"}
        status, body = await self._post(sub.endpoint, json.dumps([event]).encode(), headers)
        if status is None or not 200 <= status <= 204:
            raise BrokerError(
                400, "BadRequest", f"webhook validation handshake failed (status {status})"
            )
        try:
            answer = json.loads(body or b"null")
        except ValueError:
            answer = None
        if isinstance(answer, Mapping) and answer.get("validationResponse") == sub.validation_code:
            sub.state = "Succeeded"
        else:
            sub.state = "AwaitingManualAction"

    async def _options_handshake(self, sub: WebhookSubscription) -> None:
        headers = {"WebHook-Request-Origin": WEBHOOK_ORIGIN, "WebHook-Request-Rate": "120"}
        try:
            async with self.session().options(
                sub.endpoint, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                allowed = response.headers.get("WebHook-Allowed-Origin", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BrokerError(400, "BadRequest", f"webhook abuse-protection failed: {exc}") from exc
        if status != 200 or allowed not in (WEBHOOK_ORIGIN, "*"):
            raise BrokerError(
                400,
                "BadRequest",
                f"webhook abuse-protection failed (status {status}, allowed origin {allowed!r})",
            )

    # -- delivery -----------------------------------------------------------
    def publish(
        self,
        topic: str,
        events: Sequence[Mapping[str, Any]],
        originals: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Start delivering the events to each active, matching subscription.

        For a custom input schema topic `events` are the mapped Event Grid
        events (what filters see) and `originals` the events as published.
        """
        published = self.clock()
        for sub in self.subscriptions.get(topic, {}).values():
            if sub.state != "Succeeded":
                continue
            matched = [
                _as_delivered(sub.schema, event, originals[i] if originals else None)
                for i, event in enumerate(events)
                if sub.matches(event)
            ]
            for start in range(0, len(matched), sub.max_batch):
                batch = matched[start : start + sub.max_batch]
                task = asyncio.get_running_loop().create_task(
                    self._deliver(sub, batch, published, utc_iso())
                )
                sub.tasks.add(task)
                task.add_done_callback(sub.tasks.discard)

    async def _deliver(
        self,
        sub: WebhookSubscription,
        batch: list[Mapping[str, Any]],
        published: float,
        publish_time: str,
    ) -> None:
        body, content_type = _delivery_body(sub.schema, batch)
        ids = [str(e.get("id")) for e in batch]
        attempt = 0
        while True:
            attempt += 1
            headers = {
                "Content-Type": content_type,
                "aeg-event-type": "Notification",
                "aeg-subscription-name": sub.name.upper(),
                "aeg-delivery-count": str(attempt - 1),
                "aeg-metadata-version": "1",
                "aeg-data-version": str(batch[0].get("dataVersion", "")),
            }
            status, _ = await self._post(sub.endpoint, body, headers)
            outcome = _outcome(status)
            now_iso = utc_iso()
            if status is not None and 200 <= status <= 204:
                sub.attempts.append(Attempt(ids, attempt, status, outcome, now_iso, None))
                return
            reason = None
            if status in NOT_RETRIED:
                reason = f"UndeliverableDueToHttp{outcome}"
            elif attempt >= sub.max_attempts:
                reason = "MaxDeliveryAttemptsExceeded"
            delay = None if reason else retry_delay(attempt, self.jitter, self.rng)
            ttl_end = published + sub.ttl_minutes * 60 * self.time_scale
            if delay is not None and self.clock() + delay * self.time_scale >= ttl_end:
                reason, delay = "TimeToLiveExceeded", None
            sub.attempts.append(Attempt(ids, attempt, status, outcome, now_iso, delay))
            if reason is not None:
                if sub.dead_letter:
                    for event in batch:
                        sub.dead_letters.append(
                            {
                                **event,
                                "deadLetterReason": reason,
                                "deliveryAttempts": attempt,
                                "lastDeliveryOutcome": outcome,
                                "lastHttpStatusCode": status or 0,
                                "publishTime": publish_time,
                                "lastDeliveryAttemptTime": now_iso,
                            }
                        )
                return
            await asyncio.sleep((delay or 0) * self.time_scale)

    async def _post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int | None, bytes]:
        try:
            async with self.session().post(
                url,
                data=body,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=self.response_timeout),
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return None, b""


def _as_delivered(
    schema: str, event: Mapping[str, Any], original: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """The event as a subscription with delivery `schema` receives it."""
    if original is None:
        return event
    if schema == CUSTOM_DELIVERY:
        return original
    if schema == CLOUDEVENTS_SCHEMA:
        return to_cloudevent(event)
    return event


def _delivery_body(schema: str, batch: list[Mapping[str, Any]]) -> tuple[bytes, str]:
    if schema in (EVENTGRID_SCHEMA, CUSTOM_DELIVERY):
        return json.dumps(batch).encode(), "application/json; charset=utf-8"
    if len(batch) == 1:
        return json.dumps(batch[0]).encode(), "application/cloudevents+json; charset=utf-8"
    return json.dumps(batch).encode(), "application/cloudevents-batch+json; charset=utf-8"


def _outcome(status: int | None) -> str:
    if status is None:
        return "TimedOut"
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return f"Http{status}"


def _cancel(sub: WebhookSubscription) -> None:
    for task in list(sub.tasks):
        task.cancel()
