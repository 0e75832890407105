"""The emulator's HTTP surface: Event Grid's data plane plus a small admin API.

Data plane (what the azure-eventgrid SDK calls):

- ``POST /{topic}/api/events?api-version=2018-01-01``: basic-topic publish,
  ``aeg-sas-key`` or ``aeg-sas-token`` auth.
- ``POST /topics/{topic}:publish?api-version=...``: namespace publish,
  ``Authorization: SharedAccessKey <key>`` (``aeg-sas-key`` also accepted).
- ``POST /topics/{topic}/eventsubscriptions/{sub}:receive|acknowledge|release|reject|renewLock``.

Admin API (management plane, which real Azure puts in ARM), same key:

- ``PUT|GET|DELETE /admin/namespace/topics/{topic}``
- ``PUT|GET|DELETE /admin/namespace/topics/{topic}/eventsubscriptions/{sub}``
  body ``{"filter", "maxDeliveryCount", "lockDurationInSeconds", "deadLetterTopic"}``
- ``GET /admin/namespace/topics/{topic}/eventsubscriptions/{sub}/deadletters``
- ``PUT|GET|DELETE /admin/basic/topics/{topic}`` body ``{"inputSchema"}``
- ``PUT|GET|DELETE /admin/basic/topics/{topic}/eventsubscriptions/{sub}``
  body ``{"endpointUrl", "filter", "maxDeliveryAttempts", "eventTimeToLiveInMinutes",
  "deadLetter", "maxEventsPerBatch"}``
- ``GET /admin/basic/topics/{topic}/eventsubscriptions/{sub}/deadletters`` and ``.../deliveries``
- ``DELETE .../eventsubscriptions/{sub}/deadletters/{eventId}``: remove one dead letter
  (as a reader deletes the dead-letter blob it has processed)
- ``PUT|GET|DELETE /admin/domains/{domain}`` body ``{"inputSchema", "inputSchemaMapping"}``,
  ``.../topics/{topic}``, ``.../topics/{topic}/eventsubscriptions/{sub}`` and the
  domain-scope ``.../eventsubscriptions/{sub}`` (webhook subscription bodies)
- ``PUT|GET|DELETE /admin/partnernamespaces/{ns}`` and ``.../channels/{channel}`` body
  ``{"partnerTopic"}``; the partner topic is a basic topic
- ``GET /admin/validate?topic=...&sub=...&code=...`` (the validationUrl; no key needed)

Basic-topic publishing also serves domains (each event names its domain topic)
and partner namespaces (the ``aeg-channel-name`` header picks the channel):
see domains.py. Custom input schemas: input_schema.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

from aiohttp import web

from polybus.adapters.azure.emulator.arm import add_arm_routes
from polybus.adapters.azure.emulator.domains import DOMAIN_SCOPE, Domains, parse_topic_body
from polybus.adapters.azure.emulator.input_schema import CUSTOM_SCHEMA, map_event
from polybus.adapters.azure.emulator.namespace import (
    MAX_RECEIVE_EVENTS,
    MAX_WAIT_SECONDS,
    RELEASE_DELAYS,
    BrokerError,
    Namespace,
    receive_detail,
    utc_iso,
)
from polybus.adapters.azure.emulator.push import CLOUDEVENTS_SCHEMA, EVENTGRID_SCHEMA, BasicTopics
from polybus.adapters.azure.emulator.sas import check_sas_token, keys_match

# Azure's limits: 1 MB per event (documented); a request over 1,536,000 bytes is refused
# with "The maximum size (1536000) has been exceeded." (what the service answers).
MAX_EVENT_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 1_536_000
MAX_JSON_DEPTH = 64  # System.Text.Json's default maximum depth, which Event Grid applies
TOO_LARGE = f"The maximum size ({MAX_REQUEST_BYTES}) has been exceeded."
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,20}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    """An Azure-style JSON error body."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class Routes:
    """aiohttp handlers over the namespace and basic-topic brokers."""

    def __init__(self, key: str, namespace: Namespace, basic: BasicTopics) -> None:
        self.key = key
        self.namespace = namespace
        self.basic = basic
        self.domains = Domains(basic)

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=4 * MAX_REQUEST_BYTES, middlewares=[self._errors])
        ns, basic = "/admin/namespace/topics/{topic}", "/admin/basic/topics/{topic}"
        app.router.add_post("/topics/{action}", self.namespace_publish)
        app.router.add_post("/topics/{topic}/eventsubscriptions/{action}", self.pull)
        app.router.add_post("/{topic}/api/events", self.basic_publish)
        app.router.add_get("/admin/validate", self.validate)
        dom, pns = "/admin/domains/{domain}", "/admin/partnernamespaces/{ns}"
        app.router.add_route("*", dom, self.admin_domain)
        app.router.add_route("*", dom + "/topics/{topic}", self.admin_domain_topic)
        app.router.add_route(
            "*", dom + "/topics/{topic}/eventsubscriptions/{sub}", self.admin_domain_sub
        )
        app.router.add_route("*", dom + "/eventsubscriptions/{sub}", self.admin_domain_sub)
        add_arm_routes(app, self.namespace, self._require_bearer)
        app.router.add_route("*", pns, self.admin_partner_namespace)
        app.router.add_route("*", pns + "/channels/{channel}", self.admin_channel)
        app.router.add_route("*", ns, self.admin_namespace_topic)
        app.router.add_route("*", ns + "/eventsubscriptions/{sub}", self.admin_namespace_sub)
        app.router.add_get(ns + "/eventsubscriptions/{sub}/deadletters", self.ns_dead_letters)
        app.router.add_route("*", basic, self.admin_basic_topic)
        app.router.add_route("*", basic + "/eventsubscriptions/{sub}", self.admin_basic_sub)
        app.router.add_get(basic + "/eventsubscriptions/{sub}/{what}", self.basic_records)
        app.router.add_delete(
            basic + "/eventsubscriptions/{sub}/deadletters/{event_id}", self.basic_dead_letter_done
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BrokerError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "RequestEntityTooLarge", TOO_LARGE)

    # -- auth and bodies ----------------------------------------------------
    def _require_key(self, request: web.Request, *, sas_path: str | None = None) -> None:
        headers = request.headers
        given = headers.get("aeg-sas-key")
        auth = headers.get("Authorization", "")
        if given is None and auth.startswith("SharedAccessKey "):
            given = auth[len("SharedAccessKey ") :]
        if given is None and auth.startswith("Bearer "):  # Entra ID: the emulator's key as token
            self._require_bearer(request)
            return
        if given is not None:
            if given.isascii() and keys_match(given, self.key):
                return
            raise BrokerError(401, "Unauthorized", "the access key is not valid")
        token = headers.get("aeg-sas-token")
        if token is not None and sas_path is not None:
            why = check_sas_token(token, self.key, sas_path)
            if why is None:
                return
            raise BrokerError(401, "Unauthorized", f"the SAS token is not valid: {why}")
        raise BrokerError(401, "Unauthorized", "missing credentials")

    def _require_bearer(self, request: web.Request) -> None:
        """ARM and Entra ID requests: ``Authorization: Bearer <token>`` with the emulator's key."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise BrokerError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        token = auth[len("Bearer ") :]
        if not (token.isascii() and keys_match(token, self.key)):
            raise BrokerError(
                401, "InvalidAuthenticationToken", "The access token is invalid (the emulator takes its key)."
            )

    async def _json_body(self, request: web.Request, default: Any = None) -> Any:
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            raise BrokerError(413, "RequestEntityTooLarge", TOO_LARGE)
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES:
            raise BrokerError(413, "RequestEntityTooLarge", TOO_LARGE)
        if not raw:
            return default
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BrokerError(400, "BadRequest", f"body is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise BrokerError(400, "BadRequest", _DEPTH_MESSAGE) from exc
        if _depth_exceeds(body, MAX_JSON_DEPTH):
            raise BrokerError(400, "BadRequest", _DEPTH_MESSAGE)
        return body

    # -- namespace data plane ----------------------------------------------
    async def namespace_publish(self, request: web.Request) -> web.Response:
        """Publish one CloudEvent or a batch to a namespace topic."""
        topic, _, verb = request.match_info["action"].rpartition(":")
        if verb != "publish" or not topic:
            raise BrokerError(404, "NotFound", "unknown operation")
        self._require_key(request)
        body = await self._json_body(request)
        events = body if isinstance(body, list) else [body]
        for event in events:
            _check_cloudevent(event)
            _check_event_size(event)
        self.namespace.publish(topic, events)
        return web.json_response({})

    async def pull(self, request: web.Request) -> web.Response:
        """receive / acknowledge / release / reject / renewLock on a subscription."""
        topic = request.match_info["topic"]
        sub, _, verb = request.match_info["action"].rpartition(":")
        self._require_key(request)
        if verb == "receive":
            await self._json_body(request)
            max_events = _number(request.query.get("maxEvents", "1"), "maxEvents")
            wait = _number(request.query.get("maxWaitTime", "60"), "maxWaitTime")
            if not 1 <= max_events <= MAX_RECEIVE_EVENTS or not 0 <= wait <= MAX_WAIT_SECONDS:
                raise BrokerError(400, "BadRequest", "maxEvents is 1..100, maxWaitTime 0..120")
            items = await self.namespace.receive(topic, sub, int(max_events), wait)
            return web.json_response({"value": [receive_detail(i) for i in items]})
        body = await self._json_body(request, {})
        tokens = body.get("lockTokens") if isinstance(body, Mapping) else None
        if not isinstance(tokens, list) or not tokens:
            raise BrokerError(400, "BadRequest", "lockTokens must be a non-empty list")
        if verb == "acknowledge":
            result = self.namespace.acknowledge(topic, sub, tokens)
        elif verb == "release":
            delay = _release_delay(request.query.get("releaseDelayInSeconds", "0"))
            result = self.namespace.release(topic, sub, tokens, delay)
        elif verb == "reject":
            result = self.namespace.reject(topic, sub, tokens)
        elif verb == "renewLock":
            result = self.namespace.renew_locks(topic, sub, tokens)
        else:
            raise BrokerError(404, "NotFound", f"unknown operation {verb!r}")
        return web.json_response(result)

    # -- basic topics ---------------------------------------------------------
    async def basic_publish(self, request: web.Request) -> web.Response:
        """Publish a batch in the topic's input schema to a basic topic."""
        topic = request.match_info["topic"]
        self._require_key(request, sas_path=request.path)
        if "api-version" not in request.query:
            raise BrokerError(400, "BadRequest", "api-version is required")
        body = await self._json_body(request)
        if topic in self.domains.channels:  # a partner namespace: the channel names the topic
            topic = self.domains.channel_topic(topic, request.headers.get("aeg-channel-name"))
        schema = self.basic.schemas.get(topic) or self.domains.schemas.get(topic)
        if schema is None:
            raise BrokerError(404, "NotFound", f"basic topic {topic!r} does not exist")
        if not isinstance(body, list):
            raise BrokerError(400, "BadRequest", "the body must be a JSON array of events")
        for event in body:
            _check_event_size(event)
            if schema == CLOUDEVENTS_SCHEMA:
                _check_cloudevent(event)
        if topic in self.domains.schemas:
            self.domains.publish(topic, body if schema != EVENTGRID_SCHEMA else [
                _eventgrid_event(e, topic, domain=True) for e in body
            ])
        elif schema == CUSTOM_SCHEMA:
            mapping = self.basic.mappings[topic]
            mapped = [map_event(mapping, e, f"/emulator/topics/{topic}") for e in body]
            self.basic.publish(topic, mapped, body)
        elif schema == CLOUDEVENTS_SCHEMA:
            self.basic.publish(topic, body)
        else:
            self.basic.publish(topic, [_eventgrid_event(e, topic) for e in body])
        return web.Response(status=200)

    async def validate(self, request: web.Request) -> web.Response:
        """The validationUrl of the manual handshake."""
        topic, sub = request.query.get("topic", ""), request.query.get("sub", "")
        self.basic.confirm_validation(topic, sub, request.query.get("code", ""))
        return web.Response(text="Webhook successfully validated as a subscription endpoint.")

    # -- admin ----------------------------------------------------------------
    async def admin_namespace_topic(self, request: web.Request) -> web.Response:
        """Create, show or delete a namespace topic."""
        self._require_key(request)
        topic = request.match_info["topic"]
        if request.method == "PUT":
            self.namespace.create_topic(topic)
        elif request.method == "DELETE":
            self.namespace.delete_topic(topic)
            return web.json_response({})
        elif topic not in self.namespace.topics:
            raise BrokerError(404, "NotFound", f"namespace topic {topic!r} does not exist")
        return web.json_response(
            {"name": topic, "eventSubscriptions": sorted(self.namespace.topics[topic])}
        )

    async def admin_namespace_sub(self, request: web.Request) -> web.Response:
        """Create/update, show or delete a pull subscription."""
        self._require_key(request)
        topic, name = request.match_info["topic"], request.match_info["sub"]
        if request.method == "PUT":
            config = await self._json_body(request, {})
            return web.json_response(
                self.namespace.put_subscription(topic, name, config or {}).describe()
            )
        if request.method == "DELETE":
            self.namespace.delete_subscription(topic, name)
            return web.json_response({})
        return web.json_response(self.namespace.subscription(topic, name).describe())

    async def ns_dead_letters(self, request: web.Request) -> web.Response:
        """Dead-letter records of a pull subscription (oldest first)."""
        self._require_key(request)
        sub = self.namespace.subscription(request.match_info["topic"], request.match_info["sub"])
        return web.json_response({"value": sub.dead_letters})

    async def admin_basic_topic(self, request: web.Request) -> web.Response:
        """Create, show or delete a basic topic."""
        self._require_key(request)
        topic = request.match_info["topic"]
        if request.method == "PUT":
            config = await self._json_body(request, {}) or {}
            if topic in self.domains.schemas or topic in self.domains.channels:
                raise BrokerError(409, "Conflict", f"{topic!r} is already a domain or namespace")
            self.basic.create_topic(topic, *parse_topic_body(config))
        elif request.method == "DELETE":
            self.basic.delete_topic(topic)
            return web.json_response({})
        elif topic not in self.basic.schemas:
            raise BrokerError(404, "NotFound", f"basic topic {topic!r} does not exist")
        return web.json_response(self._describe_topic(request, topic, topic))

    def _describe_topic(self, request: web.Request, key: str, endpoint_name: str) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": key,
            "inputSchema": self.basic.schemas[key],
            "endpoint": f"{request.scheme}://{request.host}/{endpoint_name}/api/events",
            "eventSubscriptions": sorted(self.basic.subscriptions[key]),
        }
        mapping = self.basic.mappings.get(key)
        if mapping is not None:
            described["inputSchemaMapping"] = mapping.to_json()
        return described

    async def admin_domain(self, request: web.Request) -> web.Response:
        """Create, show or delete an event domain."""
        self._require_key(request)
        domain = request.match_info["domain"]
        if request.method == "PUT":
            config = await self._json_body(request, {}) or {}
            self.domains.create_domain(domain, *parse_topic_body(config))
        elif request.method == "DELETE":
            self.domains.delete_domain(domain)
            return web.json_response({})
        described = self._describe_topic(
            request, Domains.topic_key(domain, DOMAIN_SCOPE), domain
        ) if domain in self.domains.schemas else None
        if described is None:
            raise BrokerError(404, "NotFound", f"domain {domain!r} does not exist")
        described["name"] = domain
        described["domainTopics"] = self.domains.topics(domain)
        return web.json_response(described)

    async def admin_domain_topic(self, request: web.Request) -> web.Response:
        """Create, show or delete a domain topic."""
        self._require_key(request)
        domain, topic = request.match_info["domain"], request.match_info["topic"]
        key = Domains.topic_key(domain, topic)
        if request.method == "PUT":
            self.domains.domain_topic(domain, topic)
        elif request.method == "DELETE":
            self.basic.delete_topic(key)
            return web.json_response({})
        elif key not in self.basic.schemas:
            raise BrokerError(404, "NotFound", f"domain topic {domain}/{topic} does not exist")
        return web.json_response(self._describe_topic(request, key, domain))

    async def admin_domain_sub(self, request: web.Request) -> web.Response:
        """A webhook subscription on a domain topic (created with it) or on the whole domain."""
        self._require_key(request)
        domain = request.match_info["domain"]
        topic = request.match_info.get("topic", DOMAIN_SCOPE)
        name = request.match_info["sub"]
        key = Domains.topic_key(domain, topic)
        if request.method == "PUT":
            config = await self._json_body(request, {}) or {}
            self.domains.domain_topic(domain, topic)  # autoCreateTopicWithFirstSubscription
            sub = await self.basic.put_subscription(key, name, config)
            return web.json_response(sub.describe())
        if request.method == "DELETE":
            self.basic.delete_subscription(key, name)
            return web.json_response({})
        return web.json_response(self.basic.subscription(key, name).describe())

    async def admin_partner_namespace(self, request: web.Request) -> web.Response:
        """Create, show or delete a partner namespace."""
        self._require_key(request)
        namespace = request.match_info["ns"]
        if request.method == "PUT":
            self.domains.create_partner_namespace(namespace)
        elif request.method == "DELETE":
            for topic in self.domains.channels.pop(namespace, {}).values():
                self.basic.delete_topic(topic)
            return web.json_response({})
        channels = self.domains.partner_namespace(namespace)
        endpoint = f"{request.scheme}://{request.host}/{namespace}/api/events"
        return web.json_response({"name": namespace, "endpoint": endpoint, "channels": channels})

    async def admin_channel(self, request: web.Request) -> web.Response:
        """Create, show or delete a channel (and its partner topic)."""
        self._require_key(request)
        namespace, channel = request.match_info["ns"], request.match_info["channel"]
        if request.method == "PUT":
            config = await self._json_body(request, {}) or {}
            unknown = [k for k in config if k != "partnerTopic"]
            if unknown or not isinstance(config.get("partnerTopic"), str):
                raise BrokerError(400, "BadRequest", "the body is {\"partnerTopic\": NAME}")
            self.domains.put_channel(namespace, channel, config["partnerTopic"])
        elif request.method == "DELETE":
            topic = self.domains.partner_namespace(namespace).pop(channel, None)
            if topic is not None:
                self.basic.delete_topic(topic)
            return web.json_response({})
        channels = self.domains.partner_namespace(namespace)
        if channel not in channels:
            raise BrokerError(404, "NotFound", f"channel {channel!r} does not exist")
        return web.json_response(
            {"name": channel, "partnerNamespace": namespace, "partnerTopic": channels[channel]}
        )

    async def admin_basic_sub(self, request: web.Request) -> web.Response:
        """Create/update (with the handshake), show or delete a webhook subscription."""
        self._require_key(request)
        topic, name = request.match_info["topic"], request.match_info["sub"]
        if request.method == "PUT":
            config = await self._json_body(request, {}) or {}
            sub = await self.basic.put_subscription(topic, name, config)
            return web.json_response(sub.describe())
        if request.method == "DELETE":
            self.basic.delete_subscription(topic, name)
            return web.json_response({})
        return web.json_response(self.basic.subscription(topic, name).describe())

    async def basic_records(self, request: web.Request) -> web.Response:
        """A webhook subscription's dead letters or delivery-attempt log."""
        self._require_key(request)
        sub = self.basic.subscription(request.match_info["topic"], request.match_info["sub"])
        what = request.match_info["what"]
        if what == "deadletters":
            return web.json_response({"value": sub.dead_letters})
        if what == "deliveries":
            return web.json_response({"value": [asdict(a) for a in sub.attempts]})
        raise BrokerError(404, "NotFound", f"unknown record kind {what!r}")

    async def basic_dead_letter_done(self, request: web.Request) -> web.Response:
        """Remove the oldest dead letter with this event id (a processed dead-letter blob)."""
        self._require_key(request)
        sub = self.basic.subscription(request.match_info["topic"], request.match_info["sub"])
        event_id = request.match_info["event_id"]
        for index, record in enumerate(sub.dead_letters):
            if record.get("id") == event_id:
                del sub.dead_letters[index]
                return web.json_response({})
        raise BrokerError(404, "NotFound", f"no dead letter with id {event_id!r}")


_DEPTH_MESSAGE = f"The JSON body is nested deeper than the maximum depth ({MAX_JSON_DEPTH})."


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise BrokerError(400, "BadRequest", f"{name} must be a number") from exc
    if not math.isfinite(value):
        raise BrokerError(400, "BadRequest", f"{name} must be a finite number, not {text!r}")
    return value


def _release_delay(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in RELEASE_DELAYS:  # nan and inf are never members
        raise BrokerError(
            400, "BadRequest", f"releaseDelayInSeconds must be one of {RELEASE_DELAYS}, not {text!r}"
        )
    return int(value)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests deeper than `limit` (iterative: no recursion to overflow)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_event_size(event: Any) -> None:
    size = len(json.dumps(event, separators=(",", ":")).encode("utf-8"))
    if size > MAX_EVENT_BYTES:
        raise BrokerError(
            413,
            "RequestEntityTooLarge",
            f"An event is {size} bytes; the maximum size of one event is {MAX_EVENT_BYTES} bytes.",
        )


def _check_cloudevent(event: Any) -> None:
    if not isinstance(event, Mapping):
        raise BrokerError(400, "BadRequest", "each event must be a JSON object")
    if event.get("specversion") != "1.0":
        raise BrokerError(400, "BadRequest", "specversion must be '1.0' (CloudEvents schema)")
    for name in ("id", "source", "type"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise BrokerError(400, "BadRequest", f"CloudEvent attribute {name!r} is required")
    for name in event:
        if name not in ("data", "data_base64") and not _ATTRIBUTE_NAME.fullmatch(name):
            raise BrokerError(
                400,
                "BadRequest",
                f"CloudEvent attribute name {name!r} is invalid: names are 1-20 lower-case "
                "ASCII letters or digits",
            )


def _eventgrid_event(event: Any, topic: str, *, domain: bool = False) -> dict[str, Any]:
    """Check an Event Grid schema event; fill what Event Grid fills (a domain's keep `topic`)."""
    if not isinstance(event, Mapping):
        raise BrokerError(400, "BadRequest", "each event must be a JSON object")
    for name in ("id", "subject", "eventType", "eventTime", "dataVersion"):
        if not isinstance(event.get(name), str):
            raise BrokerError(400, "BadRequest", f"Event Grid event field {name!r} is required")
    out = dict(event)
    if not domain:
        out.setdefault("topic", f"/emulator/topics/{topic}")
    out.setdefault("metadataVersion", "1")
    out.setdefault("eventTime", utc_iso())
    return out
