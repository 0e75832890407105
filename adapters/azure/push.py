"""Push delivery: the webhook receiver Event Grid posts to, and push dead letters.

Kept beside delivery.py (the adapter's only module outside the common shape):
it is an HTTP server, which no other provider's adapter runs.

Event Grid pushes each event (or batch) of a basic-topic webhook subscription
in one HTTP POST and decides by the answer: 200-204 is delivered, 400/413 is
not retried (dead-lettered when the subscription has dead-lettering),
anything else or no answer within 30 s is retried on its schedule. So the
`WebhookReceiver` keeps the request open while the consumer works: every
event becomes a `PushDelivery` in its subscription's `Inbox`, `receive()`
hands it out, and the request is answered once every event of it is settled:

- all acked -> 200;
- any nacked, or not settled within `settle_timeout` (below Event Grid's 30 s)
  -> 503, so Event Grid redelivers on its retry schedule;
- otherwise (some dead-lettered or undecodable) -> 400, so Event Grid
  dead-letters the request.

The receiver is closed to outsiders. It is an aiohttp server on a thread of
its own: connections, idle or waiting for a consumer, cost no thread each.
Each subscription's URL carries a secret token (``?token=...``, derived from
``webhook_secret`` with HMAC-SHA256, or random per process); a request
without it, or with the header ``X-Polybus-Token`` missing or wrong, is
answered 401 and never reaches an inbox, handshakes included. Bodies over
`MAX_BODY` (Event Grid's 1 MB event limit plus room for the batch) are
answered 413 before they are read; every malformed request (bad JSON, JSON
nested too deeply, a bad ``aeg-delivery-count``, an empty batch, a wrong
method) gets a 4xx answer. An event of a batch that cannot be decoded is
settled as dead-lettered at once, so it alone decides nothing for the others.

A lease on a pushed event is the open request itself: Event Grid waits 30 s
for the answer and offers no way to extend that. `PushDelivery.extend` is
therefore a no-op within the request's `settle_timeout` and cannot go beyond
it; a handler slower than that sees its event redelivered by Event Grid's
schedule. A nack's `delay` is a lower bound the receiver enforces: a
redelivery that arrives earlier is held (request open) until the delay has
passed. Both handshakes are answered: the Event Grid schema
``SubscriptionValidationEvent`` (echo ``validationResponse``) and the
CloudEvents abuse-protection ``OPTIONS`` (``WebHook-Allowed-Origin``). Members
of a batch acked before it had to be redelivered are remembered (by source
and id) and acked at once on the redelivery, and dead-letter records of them
are dropped.

Push dead letters: Event Grid writes them to a storage blob container; the
emulator keeps them behind its admin API, read only when the config says
``admin = true``. A dead-letter delivery is leased to one receiver until
settled: ack deletes the record, nack or dead_letter gives it back. A record
that cannot be decoded comes back as mapping.undecodable_event.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.errors import translate_errors
from polybus.adapters.azure.mapping import (
    SIZE_LIMIT,
    event_from_wire,
    loads_event,
    undecodable_event,
)
from polybus.adapters.azure.provisioning import EmulatorAdmin
from polybus.core.contract import Delivery
from polybus.core.errors import AdapterError, ValidationError

log = logging.getLogger(__name__)

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
RETRY_STATUS = 503  # retried by Event Grid on its schedule
DEAD_LETTER_STATUS = 400  # never retried: dead-lettered when the subscription has a target
PATH_PREFIX = "/polybus/"
TOKEN_PARAM = "token"
TOKEN_HEADER = "X-Polybus-Token"
MAX_BODY = SIZE_LIMIT.limit + 64 * 1024  # one 1 MB event plus the batch's envelope
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

    def extend(self, seconds: float) -> None:
        """No-op: the lease is the open request, which Event Grid does not let anyone extend.

        The request stays open until every event of it is settled or
        `settle_timeout` has passed, whichever comes first.
        """
        if time.monotonic() + seconds > self._batch.deadline:
            log.debug(
                "azure push: %s cannot be held past its request's settle_timeout",
                self.event.get_id(),
            )


class _Request:
    """One open webhook request: its deliveries and their outcomes."""

    def __init__(
        self,
        inbox: Inbox,
        events: list[CloudEvent],
        attempt: int,
        deadline: float,
        done: asyncio.Future[None],
    ) -> None:
        self.inbox = inbox
        self.events = events
        self.deadline = deadline
        self.outcomes: list[str | None] = [None] * len(events)
        self.deliveries = [PushDelivery(e, attempt, self, i) for i, e in enumerate(events)]
        self.done = done
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
                _resolve(self.done)

    def answer(self, poison: int) -> int:
        """The status for the settled (or timed-out) request, remembering acked batch members."""
        with self._lock:
            self.expired = not all(o is not None for o in self.outcomes)
            outcomes = list(self.outcomes)
        if not poison and all(o == "ack" for o in outcomes):
            return 200
        status = DEAD_LETTER_STATUS if all(o in ("ack", "dead") for o in outcomes) else RETRY_STATUS
        for event, outcome in zip(self.events, outcomes, strict=True):
            if outcome == "ack":
                self.inbox.remember_acked(event_key(event))
        return status


def _resolve(future: asyncio.Future[None]) -> None:
    """Finish `future` from any thread (its loop may already be closed)."""

    def finish() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(finish)


class Inbox:
    """Pushed deliveries of one subscription waiting for `receive()`."""

    def __init__(self, settle_timeout: float) -> None:
        self.settle_timeout = settle_timeout
        self._ready: deque[PushDelivery] = deque()
        self._cond = threading.Condition()
        self._not_before: dict[tuple[str, str], float] = {}
        self._acked: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._open: set[_Request] = set()
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

    async def handle(self, events: list[CloudEvent], poison: int, attempt: int) -> int:
        """Hand the events out and wait (without a thread) until they are settled; the status."""
        deadline = time.monotonic() + self.settle_timeout
        fresh = [e for e in events if not self.was_acked(event_key(e))]
        if not fresh:
            return DEAD_LETTER_STATUS if poison else 200
        with self._cond:
            hold = max((self._not_before.pop(event_key(e), 0.0) for e in fresh), default=0.0)
        if hold > deadline:  # cannot hold the request that long: let the schedule try later
            for event in fresh:
                self.hold_until(event_key(event), hold)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return RETRY_STATUS
        if hold > time.monotonic():
            await asyncio.sleep(hold - time.monotonic())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request = _Request(self, fresh, attempt, deadline, done)
        with self._cond:
            if self.closed:
                return RETRY_STATUS
            self._ready.extend(request.deliveries)
            self._open.add(request)
            self._cond.notify_all()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), max(0.0, deadline - time.monotonic()))
        finally:
            with self._cond:  # never handed out: take them back before answering
                self._open.discard(request)
                for delivery in request.deliveries:
                    if delivery in self._ready:
                        self._ready.remove(delivery)
        return request.answer(poison)

    def close(self) -> None:
        """Stop handing out; open requests are answered with a retryable status at once."""
        with self._cond:
            self.closed = True
            self._ready.clear()
            requests = list(self._open)
            self._cond.notify_all()
        for request in requests:
            _resolve(request.done)


def subscription_token(secret: bytes, subscription: str) -> str:
    """The URL token of one subscription: HMAC-SHA256 of its name under the receiver's secret."""
    digest = hmac.new(secret, subscription.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class WebhookReceiver:
    """An aiohttp server on its own thread routing ``/polybus/<subscription>`` to inboxes."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, public_url: str = "", secret: str = ""
    ) -> None:
        self.inboxes: dict[str, Inbox] = {}
        self._secret = secret.encode("utf-8") if secret else secrets.token_bytes(32)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="azure-webhook", daemon=True
        )
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port = self._run(self._start(host, port))
        self.base_url = (public_url or f"http://{host}:{self.port}").rstrip("/")

    def token_for(self, subscription: str) -> str:
        """The secret token `subscription`'s requests must carry."""
        return subscription_token(self._secret, subscription)

    def url_for(self, subscription: str) -> str:
        """The endpoint URL (with its token) to give Event Grid for `subscription`."""
        token = self.token_for(subscription)
        return f"{self.base_url}{PATH_PREFIX}{subscription}?{TOKEN_PARAM}={token}"

    def close(self) -> None:
        """Answer open requests with a retryable status and stop serving (idempotent)."""
        for inbox in list(self.inboxes.values()):
            inbox.close()
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._run(self._stop(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    # -- loop side --------------------------------------------------------------
    def _run(self, coro: Any, timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout)

    async def _start(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[_answer_everything])
        app.router.add_route("*", PATH_PREFIX + "{sub}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(self._runner, sock, backlog=1024).start()
        return int(sock.getsockname()[1])

    async def _stop(self) -> None:
        if self._runner is None:
            return
        server = self._runner.server
        await self._runner.cleanup()
        await asyncio.sleep(0.05)  # connections accepted while stopping: close them too
        for protocol in list(server.connections if server is not None else ()):
            protocol.force_close()
        await asyncio.sleep(0)

    def _authorised(self, request: web.Request, sub: str) -> bool:
        given = request.query.get(TOKEN_PARAM) or request.headers.get(TOKEN_HEADER) or ""
        return hmac.compare_digest(given.encode("utf-8"), self.token_for(sub).encode("ascii"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        sub = request.match_info["sub"]
        inbox = self.inboxes.get(sub)
        if inbox is None:
            return _plain(404, "unknown subscription")
        if not self._authorised(request, sub):
            return _plain(401, "missing or wrong token")
        if request.method == "OPTIONS":
            return _abuse_protection(request)
        if request.method != "POST":
            return _plain(405, "POST or OPTIONS only", {"Allow": "POST, OPTIONS"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _plain(413, f"body over {MAX_BODY} bytes")
        raw = await request.read()
        try:
            body = loads_event(raw)
        except ValidationError as exc:
            return _plain(DEAD_LETTER_STATUS, f"body is not readable JSON: {exc.problems[0].rule}")
        items = body if isinstance(body, list) else [body]
        if not items:
            return _plain(DEAD_LETTER_STATUS, "empty batch")
        kind = request.headers.get("aeg-event-type", "Notification")
        if kind == "SubscriptionValidation":
            return _validation(items)
        if kind != "Notification":
            return _plain(DEAD_LETTER_STATUS, f"unknown aeg-event-type {kind!r}")
        count = request.headers.get("aeg-delivery-count", "0")
        if not count.isdigit() or len(count) > 6:
            return _plain(DEAD_LETTER_STATUS, "aeg-delivery-count must be a small integer")
        events, poison = [], 0
        for item in items:
            try:
                events.append(event_from_wire(item))
            except ValidationError as exc:
                poison += 1
                log.warning("azure webhook %s: undecodable event dead-lettered: %s", sub, exc)
        status = await inbox.handle(events, poison, int(count) + 1)
        return web.Response(status=status)


@web.middleware
async def _answer_everything(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request gets an answer: HTTP errors as they are, anything unexpected as 500."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        return _plain(exc.status, exc.reason)
    except Exception:
        log.exception("azure webhook: request failed")
        return _plain(500, "internal error")


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, headers=dict(headers or {}))


def _abuse_protection(request: web.Request) -> web.Response:
    """CloudEvents abuse protection: allow the requesting origin."""
    origin = request.headers.get("WebHook-Request-Origin")
    if not origin:
        return _plain(400, "WebHook-Request-Origin is required")
    allowed = {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*"}
    return web.Response(status=200, headers={**allowed, "Allow": "POST, OPTIONS"})


def _validation(items: list[Any]) -> web.Response:
    """Echo the validation code of a SubscriptionValidationEvent."""
    for item in items:
        if isinstance(item, Mapping) and item.get("eventType") == VALIDATION_EVENT:
            data = item.get("data")
            code = data.get("validationCode") if isinstance(data, Mapping) else None
            if isinstance(code, str) and code:
                return web.json_response({"validationResponse": code})
    return _plain(DEAD_LETTER_STATUS, "no SubscriptionValidationEvent with a validationCode")


# -- push dead letters (emulator admin API) -----------------------------------
@dataclass(frozen=True)
class PushRoute:
    """Where a push subscription lives and the inbox its deliveries arrive in."""

    topic: str
    sub: str
    inbox: Inbox


class DeadLetterDelivery:
    """A dead-lettered event read from the dead-letter destination; ack removes it."""

    __slots__ = ("_owner", "_record_id", "_route", "attempt", "event")

    def __init__(
        self,
        event: CloudEvent,
        attempt: int,
        route: PushRoute,
        owner: PushDeadLetters,
        record_id: str,
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._route = route
        self._owner = owner
        self._record_id = record_id

    def ack(self) -> None:
        """Processed: delete the dead-letter record."""
        self._owner.done(self._route, self._record_id, delete=True)

    def nack(self, delay: float = 0.0) -> None:
        """Give it back to the dead-letter destination (readable again at once)."""
        self._owner.done(self._route, self._record_id, delete=False)

    def dead_letter(self, reason: str) -> None:
        """It already is dead-lettered: give it back, logging `reason`."""
        log.info("dead letter %s kept: %s", self.event.get_id(), reason)
        self._owner.done(self._route, self._record_id, delete=False)


class PushDeadLetters:
    """Dead letters of webhook subscriptions, read through the emulator's admin API."""

    def __init__(self, admin: EmulatorAdmin) -> None:
        self.admin = admin
        self._leased: set[tuple[str, str]] = set()
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
            wire = {k: v for k, v in record.items() if k not in DEAD_LETTER_FIELDS}
            record_id = str(wire.get("id"))
            try:
                event = event_from_wire(wire)
            except ValidationError as exc:
                raw = json.dumps(wire, ensure_ascii=True).encode("ascii")
                reason = f"undecodable ({record.get('deadLetterReason', 'dead-lettered')}): {exc}"
                event = undecodable_event(raw, reason, f"{route.topic}/{route.sub}")
            else:
                if route.inbox.was_acked(event_key(event)):  # acked member of a refused batch
                    with translate_errors(f"drop dead letter of {route.sub}"):
                        self.admin.delete_webhook_dead_letter(route.topic, route.sub, record_id)
                    continue
            lease = (route.sub, record_id)
            with self._lock:
                if lease in self._leased:
                    continue
                self._leased.add(lease)
            attempts = record.get("deliveryAttempts")
            attempt = attempts if type(attempts) is int and attempts > 0 else 1
            out.append(DeadLetterDelivery(event, attempt, route, self, record_id))
            if len(out) >= max_events:
                break
        return out

    def done(self, route: PushRoute, record_id: str, *, delete: bool) -> None:
        """End a dead letter's lease, deleting the record when it was processed."""
        lease = (route.sub, record_id)
        with self._lock:
            if lease not in self._leased:
                raise AdapterError(f"dead letter {record_id} is already settled")
            self._leased.discard(lease)
        if delete:
            with translate_errors(f"delete dead letter of {route.sub}"):
                self.admin.delete_webhook_dead_letter(route.topic, route.sub, record_id)
