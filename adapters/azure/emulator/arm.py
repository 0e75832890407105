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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from polybus.adapters.azure.emulator.namespace import BrokerError, Namespace

PREFIX = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.EventGrid"
    "/namespaces/{namespace}/topics/{topic}"
)
MIN_LOCK, MAX_LOCK = 60, 300
MAX_DELIVERY_COUNT = 10
_SUBSCRIPTION_KEYS = ("deliveryConfiguration", "eventDeliverySchema", "filtersConfiguration")


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
            raise BrokerError(404, "ResourceNotFound", f"The namespace topic {name!r} was not found.")
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

    app.router.add_route("*", PREFIX, topic)
    app.router.add_route("*", PREFIX + "/eventSubscriptions/{name}", subscription)


def parse_subscription(body: Any) -> dict[str, Any]:
    """The emulator's subscription settings from an ARM body; 400 naming the field otherwise."""
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise _invalid("properties", None, "the body must be {\"properties\": {...}}")
    properties = body["properties"]
    for key in properties:
        if key not in _SUBSCRIPTION_KEYS and key != "provisioningState":
            raise _invalid(f"properties.{key}", key, f"unknown; expected {', '.join(_SUBSCRIPTION_KEYS)}")
    delivery = properties.get("deliveryConfiguration") or {}
    if delivery.get("deliveryMode", "Queue") != "Queue":
        raise _invalid(
            "deliveryConfiguration.deliveryMode", delivery.get("deliveryMode"), "only Queue is emulated"
        )
    queue = delivery.get("queue") or {}
    lock = queue.get("receiveLockDurationInSeconds", 60)
    if not isinstance(lock, int) or not MIN_LOCK <= lock <= MAX_LOCK:
        raise _invalid("queue.receiveLockDurationInSeconds", lock, f"must be {MIN_LOCK}..{MAX_LOCK}")
    count = queue.get("maxDeliveryCount", MAX_DELIVERY_COUNT)
    if not isinstance(count, int) or not 1 <= count <= MAX_DELIVERY_COUNT:
        raise _invalid("queue.maxDeliveryCount", count, f"must be 1..{MAX_DELIVERY_COUNT}")
    schema = properties.get("eventDeliverySchema", "CloudEventSchemaV1_0")
    if schema != "CloudEventSchemaV1_0":
        raise _invalid("eventDeliverySchema", schema, "namespace topics deliver CloudEventSchemaV1_0")
    filters = properties.get("filtersConfiguration") or None
    return {"filter": filters, "maxDeliveryCount": count, "lockDurationInSeconds": float(lock)}


def _invalid(field: str, value: Any, rule: str) -> BrokerError:
    return BrokerError(400, "InvalidRequest", f"{field} = {value!r}: {rule}")


def _require_api_version(request: web.Request) -> None:
    if "api-version" not in request.query:
        raise BrokerError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")


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
