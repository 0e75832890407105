"""The loopback webhook the azure adapter runs for Event Grid push delivery.

Event Grid pushes each event (or batch) of a webhook subscription in one
HTTP POST and decides by the answer: 200-204 is delivered, 400/413 is not
retried (dead-lettered when the subscription has dead-lettering), anything
else or no answer within 30 s is retried on its schedule. So the receiver
keeps the request open while the consumer works: every event becomes a
`PushDelivery` in its subscription's `Inbox`, `receive()` hands it out, and
the request is answered once every event of it is settled:

- all acked -> 200;
- any nacked, or not settled within `settle_timeout` (below Event Grid's 30 s)
  -> 503, so Event Grid redelivers on its retry schedule;
- otherwise (some dead-lettered) -> 400, so Event Grid dead-letters the request.

A nack's `delay` is a lower bound the receiver enforces: a redelivery that
arrives earlier is held (request open) until the delay has passed; when it
arrives later, Event Grid's schedule decided. Both handshakes are answered:
the Event Grid schema ``SubscriptionValidationEvent`` (echo
``validationResponse``) and the CloudEvents abuse-protection ``OPTIONS``
(``WebHook-Allowed-Origin`` / ``WebHook-Allowed-Rate``).

A batch is settled as a whole: when it has to be redelivered, members that
were acked are remembered (by source and id) and acked at once on the
redelivery instead of being handed out again, and dead-letter records of
them are dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.mapping import from_wire_dict
from polybus.core.errors import AdapterError, PolybusError

log = logging.getLogger(__name__)

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
RETRY_STATUS = 503  # retried by Event Grid on its schedule
DEAD_LETTER_STATUS = 400  # never retried: dead-lettered when the subscription has a target
PATH_PREFIX = "/polybus/"
_MAX_REMEMBERED = 10_000


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
