"""The slice of Azure Resource Manager the emulator serves: namespace topics and their event subscriptions.

azure-mgmt-eventgrid's ``EventGridManagementClient`` (pointed at the emulator
with ``base_url``) creates, reads and deletes them with the request and
response shapes of ARM::

    PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.EventGrid
                   /namespaces/{ns}/topics/{topic}?api-version=...
    PUT|GET|DELETE .../topics/{topic}/eventSubscriptions/{name}?api-version=...

Requests carry ``Authorization: Bearer <token>``; the emulator accepts its own
key as the token (whatever credential produced it: the tests use
DefaultAzureCredential through the Azure CLI). PUT answers 200 with
``provisioningState: Succeeded`` (no long-running operation to poll). The
emulator serves one namespace: the subscription, resource group and
namespace in the path name it but are not checked. Queue settings are checked
against ARM's ranges (lock 60-300 s, max delivery count 1-10), filters use
``filtersConfiguration`` (``includedEventTypes`` and ``filters``).

It also serves Azure Monitor's metrics of the namespace (what the adapter's
monitoring.py reads)::

    GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.EventGrid/namespaces/{ns}
        /providers/Microsoft.Insights/metrics?api-version=...&metricnames=...
        &aggregation=Total&timespan=start/end&interval=PT1H&$filter=Topic eq 't' and ...

answering ``value[].timeseries[].data[].total`` for MatchedEvents,
SuccessfulAcknowledgedEvents, DeadLetteredEvents and DroppedEvents per
(Topic, EventSubscriptionName), from the namespace's live state: the
emulator keeps no history, so a metric's whole count lands in the newest
interval. Acknowledgements are the subscription's own count
(`PullSubscription.acknowledged`); the emulator never drops an event, so
DroppedEvents is 0. Other metric names, aggregations, intervals or
dimensions are refused with Azure Monitor's ``{"code", "message"}`` error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from polybus.adapters.azure.emulator.namespace import BrokerError, Namespace, PullSubscription

PREFIX = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.EventGrid"
    "/namespaces/{namespace}/topics/{topic}"
)
MIN_LOCK, MAX_LOCK = 60, 300
MAX_DELIVERY_COUNT = 10
_SUBSCRIPTION_KEYS = ("deliveryConfiguration", "eventDeliverySchema", "filtersConfiguration")
NAMESPACE = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.EventGrid"
    "/namespaces/{namespace}"
)
METRICS_PATH = NAMESPACE + "/providers/Microsoft.Insights/metrics"
METRICS = {  # name -> localized name, as Azure Monitor lists them
    "MatchedEvents": "Matched Events",
    "SuccessfulAcknowledgedEvents": "Successful Acknowledged Events",
    "DeadLetteredEvents": "Dead Lettered Events",
    "DroppedEvents": "Dropped Events",
}
DIMENSIONS = {"topic": "Topic", "eventsubscriptionname": "EventSubscriptionName"}
INTERVALS = {
    "PT1M": timedelta(minutes=1),
    "PT5M": timedelta(minutes=5),
    "PT15M": timedelta(minutes=15),
    "PT30M": timedelta(minutes=30),
    "PT1H": timedelta(hours=1),
    "PT6H": timedelta(hours=6),
    "PT12H": timedelta(hours=12),
    "P1D": timedelta(days=1),
}
MAX_POINTS = 20_000  # per metric and series
_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def add_arm_routes(app: web.Application, namespace: Namespace, check: Any) -> None:
    """Register the ARM routes; `check(request)` authenticates (bearer token)."""

    async def topic(request: web.Request) -> web.Response:
        check(request)
        _require_api_version(request)
        name = request.match_info["topic"]
        if request.method == "PUT":
            namespace.create_topic(name)
        elif request.method == "DELETE":
            namespace.delete_topic(name)
            return web.Response(status=200)
        elif name not in namespace.topics:
            raise BrokerError(
                404, "ResourceNotFound", f"The namespace topic {name!r} was not found."
            )
        return web.json_response(_topic_resource(request, name))

    async def subscription(request: web.Request) -> web.Response:
        check(request)
        _require_api_version(request)
        topic_name, name = request.match_info["topic"], request.match_info["name"]
        if request.method == "PUT":
            body = await _json(request)
            config = parse_subscription(body)
            namespace.put_subscription(topic_name, name, config)
            return web.json_response(_subscription_resource(request, body))
        if request.method == "DELETE":
            namespace.delete_subscription(topic_name, name)
            return web.Response(status=200)
        sub = namespace.subscription(topic_name, name)
        described = sub.describe()
        body = {
            "properties": {
                "deliveryConfiguration": {
                    "deliveryMode": "Queue",
                    "queue": {
                        "receiveLockDurationInSeconds": int(described["lockDurationInSeconds"]),
                        "maxDeliveryCount": described["maxDeliveryCount"],
                    },
                },
                "eventDeliverySchema": "CloudEventSchemaV1_0",
                "filtersConfiguration": described["filter"] or {},
            }
        }
        return web.json_response(_subscription_resource(request, body))

    async def metrics(request: web.Request) -> web.Response:
        check(request)
        _require_api_version(request)
        try:
            return web.json_response(list_metrics(request.path, request.query, namespace))
        except MetricsError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=exc.status)

    app.router.add_route("*", PREFIX, topic)
    app.router.add_route("*", PREFIX + "/eventSubscriptions/{name}", subscription)
    app.router.add_get(METRICS_PATH, metrics)


class MetricsError(BrokerError):
    """A metrics request Azure Monitor would refuse, answered in its flat ``{code, message}`` body."""


def list_metrics(
    resource: str,
    query: Mapping[str, str],
    namespace: Namespace,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Azure Monitor's answer to a metrics request on the namespace (see the module docstring)."""
    names = [n.strip() for n in query.get("metricnames", "").split(",") if n.strip()]
    if not names:
        raise MetricsError(400, "BadRequest", "metricnames is required")
    for name in names:
        if name not in METRICS:
            raise MetricsError(
                400,
                "BadRequest",
                f"Failed to find metric configuration for provider: Microsoft.EventGrid, "
                f"resource Type: namespaces, metric: {name}, Valid metrics: {', '.join(METRICS)}",
            )
    aggregation = query.get("aggregation", "Total")
    if aggregation.lower() != "total":
        raise MetricsError(
            400, "BadRequest", f"aggregation {aggregation!r}: the emulator serves Total"
        )
    interval = query.get("interval", "PT1M").upper()
    if interval not in INTERVALS:
        raise MetricsError(
            400, "BadRequest", f"interval {interval!r}: must be one of {', '.join(INTERVALS)}"
        )
    start, end = _timespan(query.get("timespan"), now or datetime.now(UTC))
    stamps = _buckets(start, end, INTERVALS[interval])
    wanted = parse_dimension_filter(query.get("$filter", ""))
    subs = [
        sub
        for topic, subscriptions in namespace.topics.items()
        for sub in subscriptions.values()
        if wanted.get("Topic", topic) == topic
        and wanted.get("EventSubscriptionName", sub.name) == sub.name
    ]
    return {
        "cost": 0,
        "timespan": f"{_iso(start)}/{_iso(end)}",
        "interval": interval,
        "namespace": "Microsoft.EventGrid/namespaces",
        "resourceregion": "local",
        "value": [
            {
                "id": f"{resource.rsplit('/providers/Microsoft.Insights', 1)[0]}"
                f"/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": METRICS[name]},
                "unit": "Count",
                "timeseries": [_series(name, sub, stamps) for sub in subs],
                "errorCode": "Success",
            }
            for name in names
        ],
    }


def parse_dimension_filter(text: str) -> dict[str, str]:
    """``Dim eq 'value'`` clauses joined by ``and``; MetricsError naming what is wrong otherwise."""
    wanted: dict[str, str] = {}
    if not text.strip():
        return wanted
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise MetricsError(
                400, "BadRequest", f"$filter clause {part!r}: expected Dimension eq 'value'"
            )
        dimension = DIMENSIONS.get(match.group(1).lower())
        if dimension is None:
            raise MetricsError(
                400,
                "BadRequest",
                f"$filter dimension {match.group(1)!r}: "
                f"the emulator knows {', '.join(DIMENSIONS.values())}",
            )
        wanted[dimension] = match.group(2).replace("''", "'")
    return wanted


def _series(name: str, sub: PullSubscription, stamps: list[datetime]) -> dict[str, Any]:
    acknowledged = sub.acknowledged
    dead = len(sub.dead_letters)
    pending = len(sub.ready) + len(sub.delayed) + len(sub.locked)
    count = {
        "MatchedEvents": pending + acknowledged + dead,
        "SuccessfulAcknowledgedEvents": acknowledged,
        "DeadLetteredEvents": dead,
        "DroppedEvents": 0,
    }[name]
    data = [{"timeStamp": _iso(stamp), "total": 0.0} for stamp in stamps]
    if data:
        data[-1]["total"] = float(count)
    return {
        "metadatavalues": [
            {"name": {"value": "topic", "localizedValue": "topic"}, "value": sub.topic},
            {
                "name": {
                    "value": "eventsubscriptionname",
                    "localizedValue": "eventsubscriptionname",
                },
                "value": sub.name,
            },
        ],
        "data": data,
    }


def _timespan(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    if not text:
        return now - timedelta(hours=1), now
    start_text, _, end_text = text.partition("/")
    try:
        start = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        end = datetime.fromisoformat(end_text.replace("Z", "+00:00")) if end_text else now
    except ValueError:
        raise MetricsError(
            400, "BadRequest", f"timespan {text!r}: expected ISO 8601 start/end"
        ) from None
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise MetricsError(
            400, "BadRequest", f"timespan {text!r}: start must be before end, both with a zone"
        )
    return start, end


def _buckets(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    if (end - start) / step > MAX_POINTS:
        raise MetricsError(400, "BadRequest", f"timespan / interval exceeds {MAX_POINTS} points")
    stamps = []
    moment = start
    while moment < end:
        stamps.append(moment)
        moment += step
    return stamps


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_subscription(body: Any) -> dict[str, Any]:
    """The emulator's subscription settings from an ARM body; 400 naming the field otherwise."""
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise _invalid("properties", None, 'the body must be {"properties": {...}}')
    properties = body["properties"]
    for key in properties:
        if key not in _SUBSCRIPTION_KEYS and key != "provisioningState":
            raise _invalid(
                f"properties.{key}", key, f"unknown; expected {', '.join(_SUBSCRIPTION_KEYS)}"
            )
    delivery = properties.get("deliveryConfiguration") or {}
    if delivery.get("deliveryMode", "Queue") != "Queue":
        raise _invalid(
            "deliveryConfiguration.deliveryMode",
            delivery.get("deliveryMode"),
            "only Queue is emulated",
        )
    queue = delivery.get("queue") or {}
    lock = queue.get("receiveLockDurationInSeconds", 60)
    if not isinstance(lock, int) or not MIN_LOCK <= lock <= MAX_LOCK:
        raise _invalid(
            "queue.receiveLockDurationInSeconds", lock, f"must be {MIN_LOCK}..{MAX_LOCK}"
        )
    count = queue.get("maxDeliveryCount", MAX_DELIVERY_COUNT)
    if not isinstance(count, int) or not 1 <= count <= MAX_DELIVERY_COUNT:
        raise _invalid("queue.maxDeliveryCount", count, f"must be 1..{MAX_DELIVERY_COUNT}")
    schema = properties.get("eventDeliverySchema", "CloudEventSchemaV1_0")
    if schema != "CloudEventSchemaV1_0":
        raise _invalid(
            "eventDeliverySchema", schema, "namespace topics deliver CloudEventSchemaV1_0"
        )
    filters = properties.get("filtersConfiguration") or None
    return {"filter": filters, "maxDeliveryCount": count, "lockDurationInSeconds": float(lock)}


def _invalid(field: str, value: Any, rule: str) -> BrokerError:
    return BrokerError(400, "InvalidRequest", f"{field} = {value!r}: {rule}")


def _require_api_version(request: web.Request) -> None:
    if "api-version" not in request.query:
        raise BrokerError(
            400, "MissingApiVersionParameter", "The api-version query parameter is required."
        )


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BrokerError(400, "InvalidRequestContent", f"The body is not JSON: {exc}") from exc


def _resource_id(request: web.Request) -> str:
    return request.path


def _topic_resource(request: web.Request, name: str) -> dict[str, Any]:
    return {
        "id": _resource_id(request),
        "name": name,
        "type": "Microsoft.EventGrid/namespaces/topics",
        "properties": {
            "provisioningState": "Succeeded",
            "publisherType": "Custom",
            "inputSchema": "CloudEventSchemaV1_0",
            "eventRetentionInDays": 1,
        },
    }


def _subscription_resource(request: web.Request, body: Mapping[str, Any]) -> dict[str, Any]:
    properties = dict(body.get("properties") or {})
    properties["provisioningState"] = "Succeeded"
    return {
        "id": _resource_id(request),
        "name": request.match_info["name"],
        "type": "Microsoft.EventGrid/namespaces/topics/eventSubscriptions",
        "properties": properties,
    }
