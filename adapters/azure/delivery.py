"""Deliveries and the receive machinery: namespace pull, and push to the adapter's own webhook.

Pull (namespace event subscriptions): `PullConsumer` wraps one
``EventGridConsumerClient``; `AzureDelivery.ack` queues the lock token and the
queue is flushed with one acknowledge call at the next receive, after
`ack_flush_interval` seconds, or on close. Nack maps to release with the
smallest documented delay (0, 10, 60, 600, 3600 s) not shorter than asked;
dead_letter maps to reject. A `Budget` carries the portable attempt count and,
above Event Grid's native 10, how to republish to the redelivery topic.

Push (basic-topic webhook subscriptions): Event Grid pushes each event (or
batch) in one HTTP POST and decides by the answer: 200-204 is delivered,
400/413 is not retried (dead-lettered when the subscription has
dead-lettering), anything else or no answer within 30 s is retried on its
schedule. So the `WebhookReceiver` keeps the request open while the consumer
works: every event becomes a `PushDelivery` in its subscription's `Inbox`,
`receive()` hands it out, and the request is answered once every event of it
is settled:

- all acked -> 200;
- any nacked, or not settled within `settle_timeout` (below Event Grid's 30 s)
  -> 503, so Event Grid redelivers on its retry schedule;
- otherwise (some dead-lettered) -> 400, so Event Grid dead-letters the request.

A nack's `delay` is a lower bound the receiver enforces: a redelivery that
arrives earlier is held (request open) until the delay has passed; when it
arrives later, Event Grid's schedule decided. Both handshakes are answered:
the Event Grid schema ``SubscriptionValidationEvent`` (echo
``validationResponse``) and the CloudEvents abuse-protection ``OPTIONS``
(``WebHook-Allowed-Origin`` / ``WebHook-Allowed-Rate``). A batch is settled as
a whole: when it has to be redelivered, members that were acked are
remembered (by source and id) and acked at once on the redelivery instead of
being handed out again, and dead-letter records of them are dropped.

Push dead letters: Event Grid writes them to a storage blob container; the
emulator keeps them behind its admin API, which `PushConsumer` reads only
when the config says ``admin = true``. A dead-letter delivery is leased to one
receiver until settled: ack deletes the record (as a reader deletes a
processed blob), nack or dead_letter gives it back.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from azure.eventgrid import EventGridConsumerClient
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.config import AzureConfig
from polybus.adapters.azure.errors import translate_errors
from polybus.adapters.azure.mapping import (
    from_azure,
    from_wire_dict,
    stamp_copy,
    take_copy_state,
    to_wire,
)
from polybus.adapters.azure.provisioning import MAX_DELIVERY_COUNT, EmulatorAdmin
from polybus.core.contract import Delivery
from polybus.core.errors import AdapterError, PolybusError

log = logging.getLogger(__name__)

RELEASE_DELAYS = (0, 10, 60, 600, 3600)
MAX_RECEIVE = 100
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
RETRY_STATUS = 503  # retried by Event Grid on its schedule
DEAD_LETTER_STATUS = 400  # never retried: dead-lettered when the subscription has a target
PATH_PREFIX = "/polybus/"
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
_MAX_REMEMBERED = 10_000
_POLL = 0.05


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


# -- pull -------------------------------------------------------------------------
class AzureDelivery:
    """One received event and its lock token; settle it exactly once."""

    __slots__ = ("_consumer", "_native_count", "_settled", "_token", "attempt", "event")

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


class PullConsumer:
    """A consumer client for one namespace subscription plus its queued acks."""

    def __init__(self, client: EventGridConsumerClient, config: AzureConfig, what: str) -> None:
        self.client = client
        self.config = config
        self.what = what
        self.lock = threading.Lock()
        self.budget = Budget(MAX_DELIVERY_COUNT)
        self.pending_acks: list[str] = []
        self.outstanding: set[str] = set()

    def receive(self, max_events: int, timeout: float) -> list[AzureDelivery]:
        """Flush queued acks, then receive up to `max_events` (hiding delayed copies not yet due)."""
        self.flush()
        count = max(1, min(MAX_RECEIVE, max_events))
        kwargs: dict[str, Any]
        if self.config.admin:  # the emulator takes any wait 0..120 s, fractions included
            wait = max(0.0, min(120.0, timeout))
            kwargs = {"params": {"maxWaitTime": f"{wait:.3f}"}}
        else:  # Event Grid takes 10..120 whole seconds
            wait = float(min(120, max(10, math.ceil(timeout))))
            kwargs = {"max_wait_time": int(wait)}
        with translate_errors(f"receive from {self.what}"):
            details = self.client.receive(
                max_events=count, read_timeout=wait + self.config.timeout, **kwargs
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
        """Queue an ack; flush at once when the batch is full or batching is off."""
        with self.lock:
            self.pending_acks.append(token)
            full = len(self.pending_acks) >= MAX_RECEIVE
        if full or self.config.ack_flush_interval == 0:
            self.flush()

    def flush(self) -> None:
        """Acknowledge every queued lock token (100 per call)."""
        with self.lock:
            tokens, self.pending_acks = self.pending_acks, []
        for start in range(0, len(tokens), MAX_RECEIVE):
            chunk = tokens[start : start + MAX_RECEIVE]
            with translate_errors(f"acknowledge on {self.what}"):
                result = self.client.acknowledge(lock_tokens=chunk)
            self._settled(chunk, result.failed_lock_tokens)

    def release(self, tokens: list[str], delay: int) -> None:
        """Release locks for redelivery after `delay` seconds (one of Event Grid's steps)."""
        with translate_errors(f"release on {self.what}"):
            result = self.client.release(lock_tokens=tokens, release_delay=delay or None)
        self._settled(tokens, result.failed_lock_tokens)

    def reject(self, tokens: list[str]) -> None:
        """Reject: Event Grid dead-letters the events."""
        with translate_errors(f"reject on {self.what}"):
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


# -- push -----------------------------------------------------------------------
def event_key(event: CloudEvent) -> tuple[str, str]:
    """CloudEvents identity: source plus id."""
    return (event.get_source(), event.get_id())


class PushDelivery:
    """One pushed event; settling it (with the rest of its request) answers Event Grid."""

    __slots__ = ("_batch", "_index", "attempt", "event")

    def __init__(self, event: CloudEvent, attempt: int, batch: _Request, index: int) -> None:
        self.event = event
        self.attempt = attempt
        self._batch = batch
        self._index = index

    def ack(self) -> None:
        """Delivered: answer 200 once the rest of the request is settled."""
        self._batch.settle(self._index, "ack", 0.0)

    def nack(self, delay: float = 0.0) -> None:
        """Answer a retryable status; Event Grid's schedule redelivers, never before `delay`."""
        self._batch.settle(self._index, "nack", delay)

    def dead_letter(self, reason: str) -> None:
        """Answer 400: Event Grid does not retry and dead-letters it (reason logged here)."""
        log.info("dead-lettering %s: %s", self.event.get_id(), reason)
        self._batch.settle(self._index, "dead", 0.0)


class _Request:
    """One open webhook request: its deliveries and their outcomes."""

    def __init__(self, inbox: Inbox, events: list[CloudEvent], attempt: int) -> None:
        self.inbox = inbox
        self.events = events
        self.outcomes: list[str | None] = [None] * len(events)
        self.deliveries = [PushDelivery(e, attempt, self, i) for i, e in enumerate(events)]
        self.done = threading.Event()
        self.expired = False
        self._lock = threading.Lock()

    def settle(self, index: int, outcome: str, delay: float) -> None:
        with self._lock:
            if self.outcomes[index] is not None:
                raise AdapterError(f"delivery {self.events[index].get_id()} is already settled")
            self.outcomes[index] = outcome
            if self.expired:
                log.warning(
                    "azure push: %s settled after the request timed out; Event Grid redelivers it",
                    self.events[index].get_id(),
                )
                return
            if outcome == "nack" and delay > 0:
                self.inbox.hold_until(event_key(self.events[index]), time.monotonic() + delay)
            if all(o is not None for o in self.outcomes):
                self.done.set()

    def answer(self) -> int:
        """The status for the settled (or timed-out) request, remembering acked batch members."""
        with self._lock:
            self.expired = not self.done.is_set()
            outcomes = list(self.outcomes)
        if all(o == "ack" for o in outcomes):
            return 200
        status = DEAD_LETTER_STATUS if all(o in ("ack", "dead") for o in outcomes) else RETRY_STATUS
        for event, outcome in zip(self.events, outcomes, strict=True):
            if outcome == "ack":
                self.inbox.remember_acked(event_key(event))
        return status


class Inbox:
    """Pushed deliveries of one subscription waiting for `receive()`."""

    def __init__(self, settle_timeout: float) -> None:
        self.settle_timeout = settle_timeout
        self._ready: deque[PushDelivery] = deque()
        self._cond = threading.Condition()
        self._not_before: dict[tuple[str, str], float] = {}
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.closed = False

    def hold_until(self, key: tuple[str, str], when: float) -> None:
        """Do not hand out a redelivery of `key` before `when` (monotonic seconds)."""
        with self._cond:
            self._not_before[key] = when

    def remember_acked(self, key: tuple[str, str]) -> None:
        """An acked member of a batch that Event Grid will redeliver: ack it then, silently."""
        with self._cond:
            self._acked[key] = None
            while len(self._acked) > _MAX_REMEMBERED:
                self._acked.popitem(last=False)

    def was_acked(self, key: tuple[str, str]) -> bool:
        """Whether `key` was acked in a batch that had to be redelivered."""
        with self._cond:
            return key in self._acked

    def take(self, max_events: int, timeout: float) -> list[PushDelivery]:
        """Up to `max_events` deliveries, waiting at most `timeout` seconds for the first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            out: list[PushDelivery] = []
            while self._ready and len(out) < max_events:
                out.append(self._ready.popleft())
            return out

    def handle(self, events: list[CloudEvent], attempt: int) -> int:
        """Hand the events out and block until they are settled; returns the HTTP status."""
        deadline = time.monotonic() + self.settle_timeout
        fresh = [e for e in events if not self.was_acked(event_key(e))]
        if not fresh:
            return 200
        with self._cond:
            hold = max((self._not_before.pop(event_key(e), 0.0) for e in fresh), default=0.0)
        if hold > deadline:  # cannot hold the request that long: let the schedule try later
            for event in fresh:
                self.hold_until(event_key(event), hold)
            time.sleep(max(0.0, deadline - time.monotonic()))
            return RETRY_STATUS
        if hold > time.monotonic():
            time.sleep(hold - time.monotonic())
        request = _Request(self, fresh, attempt)
        with self._cond:
            if self.closed:
                return RETRY_STATUS
            self._ready.extend(request.deliveries)
            self._cond.notify_all()
        request.done.wait(max(0.0, deadline - time.monotonic()))
        if not request.done.is_set():
            with self._cond:  # never handed out: take them back before answering
                for delivery in request.deliveries:
                    if delivery in self._ready:
                        self._ready.remove(delivery)
        return request.answer()

    def close(self) -> None:
        """Stop handing out; open requests time out with a retryable status."""
        with self._cond:
            self.closed = True
            self._ready.clear()
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    """Event Grid opens many connections at once: a listen backlog of 5 would drop them."""

    request_queue_size = 1024


class WebhookReceiver:
    """A threaded HTTP server on loopback routing ``/polybus/<subscription>`` to inboxes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str = "") -> None:
        self.inboxes: dict[str, Inbox] = {}
        self._server = _Server((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.base_url = (public_url or f"http://{host}:{self.port}").rstrip("/")
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="azure-webhook", daemon=True
        )
        self._thread.start()

    def url_for(self, subscription: str) -> str:
        """The endpoint URL to give Event Grid for `subscription`."""
        return f"{self.base_url}{PATH_PREFIX}{subscription}"

    def close(self) -> None:
        """Answer open requests with a retryable status and stop serving."""
        for inbox in list(self.inboxes.values()):
            inbox.close()
        self._server.shutdown()
        self._server.server_close()


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 64 * 1024  # headers and body leave in one segment (flushed per request)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("azure webhook: " + format, *args)

        def _inbox(self) -> Inbox | None:
            if not self.path.startswith(PATH_PREFIX):
                return None
            return receiver.inboxes.get(self.path[len(PATH_PREFIX) :].split("?", 1)[0])

        def _answer(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            """CloudEvents abuse protection: allow the requesting origin."""
            origin = self.headers.get("WebHook-Request-Origin")
            if self._inbox() is None or not origin:
                self._answer(404 if origin else 400)
                return
            allowed = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}
            self._answer(200, headers={**allowed, "Allow": "POST, OPTIONS"})

        def do_POST(self) -> None:
            """A validation handshake or a notification."""
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            inbox = self._inbox()
            if inbox is None:
                self._answer(404)
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(DEAD_LETTER_STATUS)
                return
            items = body if isinstance(body, list) else [body]
            if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                self._validation(items)
                return
            try:
                events = [from_wire_dict(item) for item in items]
            except (PolybusError, ValueError, TypeError, KeyError) as exc:
                log.warning("azure webhook: undecodable delivery refused: %s", exc)
                self._answer(DEAD_LETTER_STATUS)
                return
            attempt = int(self.headers.get("aeg-delivery-count") or 0) + 1
            self._answer(inbox.handle(events, attempt))

        def _validation(self, items: list[Any]) -> None:
            for item in items:
                if isinstance(item, Mapping) and item.get("eventType") == VALIDATION_EVENT:
                    code = item.get("data", {}).get("validationCode")
                    answer = json.dumps({"validationResponse": code}).encode()
                    self._answer(200, answer, {"Content-Type": "application/json"})
                    return
            self._answer(400)

    return Handler


# -- push dead letters (emulator admin API) -----------------------------------
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
        self, event: CloudEvent, attempt: int, route: PushRoute, owner: PushDeadLetters
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._route = route
        self._owner = owner

    def ack(self) -> None:
        """Processed: delete the dead-letter record."""
        self._owner.done(self._route, self.event, delete=True)

    def nack(self, delay: float = 0.0) -> None:
        """Give it back to the dead-letter destination (readable again at once)."""
        self._owner.done(self._route, self.event, delete=False)

    def dead_letter(self, reason: str) -> None:
        """It already is dead-lettered: give it back, logging `reason`."""
        log.info("dead letter %s kept: %s", self.event.get_id(), reason)
        self._owner.done(self._route, self.event, delete=False)


class PushDeadLetters:
    """Dead letters of webhook subscriptions, read through the emulator's admin API."""

    def __init__(self, admin: EmulatorAdmin) -> None:
        self.admin = admin
        self._leased: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def receive(self, route: PushRoute, max_events: int, timeout: float) -> list[Delivery]:
        """Unleased dead letters of the subscription, polling until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            out = self._take(route, max_events)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))

    def _take(self, route: PushRoute, max_events: int) -> list[Delivery]:
        out: list[Delivery] = []
        with translate_errors(f"read dead letters of {route.sub}"):
            records = self.admin.webhook_dead_letters(route.topic, route.sub)
        for record in records:
            event = from_wire_dict({k: v for k, v in record.items() if k not in DEAD_LETTER_FIELDS})
            if route.inbox.was_acked(event_key(event)):  # acked member of a refused batch
                with translate_errors(f"drop dead letter of {route.sub}"):
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

    def done(self, route: PushRoute, event: CloudEvent, *, delete: bool) -> None:
        """End a dead letter's lease, deleting the record when it was processed."""
        lease = (route.sub, event.get_source(), event.get_id())
        with self._lock:
            if lease not in self._leased:
                raise AdapterError(f"dead letter {event.get_id()} is already settled")
            self._leased.discard(lease)
        if delete:
            with translate_errors(f"delete dead letter of {route.sub}"):
                self.admin.delete_webhook_dead_letter(route.topic, route.sub, event.get_id())
