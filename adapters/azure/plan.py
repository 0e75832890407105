"""The plan of what the adapter creates on Event Grid, for `polybus provision`.

Pull delivery (namespace topics, the default): per topic a namespace topic;
per subscription a queue event subscription with the lock duration, the
delivery count (Event Grid's 1..10) and the native filter
(``filtersConfiguration``) that `arm.ArmProvisioner` sends, plus, above 10
attempts, the private redelivery topic and its subscription. The namespace
itself must exist (``arm_namespace``); its dead letters go to Blob storage
when ``arm_dead_letter_container`` is set. Templates: Terraform (the azapi
provider, whose body is the ARM request) and Bicep, with the same ARM bodies.

Push delivery (basic topics): per topic a basic topic, per subscription a
webhook event subscription to ``webhook_url``; JSON only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polybus.adapters.azure.arm import subscription_body
from polybus.adapters.azure.config import AzureConfig, parse_config
from polybus.adapters.azure.filters import compile_filter
from polybus.adapters.azure.mapping import (
    REDELIVERY_SUBSCRIPTION,
    native_name,
    redelivery_topic_name,
)
from polybus.core.contract import SubscriptionSpec
from polybus.core.provisioning_plan import (
    ProvisioningPlan,
    Ref,
    Resource,
    Template,
    filter_text,
    resource_key,
    topics_of,
)

API = "2025-02-15"  # azure-mgmt-eventgrid's default ARM API version
NAMESPACE_TYPE = f"Microsoft.EventGrid/namespaces@{API}"
TOPIC_TYPE = f"Microsoft.EventGrid/namespaces/topics@{API}"
SUBSCRIPTION_TYPE = f"Microsoft.EventGrid/namespaces/topics/eventSubscriptions@{API}"
MAX_DELIVERY_COUNT = 10
NAMESPACE_KEY = "namespace"


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """Every topic and event subscription the adapter creates for `specs`."""
    config = parse_config(section)
    if config.delivery == "push":
        return _push_plan(config, specs, publications)
    resources: dict[str, Resource] = {}
    notes: list[str] = []
    namespace = config.arm_namespace or "NAMESPACE"
    if config.arm:
        parent_id = (
            f"/subscriptions/{config.arm_subscription}/resourceGroups/"
            f"{config.arm_resource_group}/providers/Microsoft.EventGrid/namespaces/{namespace}"
        )
    else:
        parent_id = "NAMESPACE_RESOURCE_ID"
        notes.append(
            "set arm_subscription, arm_resource_group and arm_namespace for the namespace's "
            "resource id (NAMESPACE and NAMESPACE_RESOURCE_ID stand for it here)"
        )
    resources[NAMESPACE_KEY] = Resource(
        NAMESPACE_KEY,
        "namespace (must exist)",
        namespace,
        "every topic",
        {"id": parent_id},
        {
            "terraform": Template("", {}),  # referred to by its resource id
            "bicep": Template(NAMESPACE_TYPE, {}, existing=True),
        },
    )
    topic_keys = {
        t: _topic(resources, config, t, parent_id) for t in topics_of(specs, publications)
    }
    residuals: dict[str, str] = {}
    for spec in specs:
        compiled = compile_filter(spec.filter)
        native = compiled.native if isinstance(compiled.native, Mapping) else None
        residual = compiled.residual if native is not None else spec.filter
        if residual is not None:
            residuals[spec.name] = filter_text(residual)
        attempts = spec.policy.max_delivery_attempts
        lock = spec.policy.ack_deadline
        _subscription(
            resources, config, topic_keys[spec.topic], native_name(spec.name), spec.name,
            native, lock, min(MAX_DELIVERY_COUNT, attempts),
        )  # fmt: skip
        if attempts > MAX_DELIVERY_COUNT:
            redelivery = redelivery_topic_name(spec.name)
            key = _topic(
                resources, config, redelivery, parent_id, f"subscription {spec.name} (redeliveries)"
            )
            _subscription(
                resources, config, key, REDELIVERY_SUBSCRIPTION, spec.name, None, lock,
                MAX_DELIVERY_COUNT,
            )  # fmt: skip
    if residuals:
        notes.append("residual filters run in the consumer: see residual_filters")
    if not config.arm_dead_letter_container:
        notes.append("dead letters are kept in Blob storage only with arm_dead_letter_container")
    return ProvisioningPlan("azure", tuple(resources.values()), residuals, tuple(notes))


def _topic(
    resources: dict[str, Resource],
    config: AzureConfig,
    portable: str,
    parent_id: str,
    purpose: str | None = None,
) -> str:
    name = config.topics.get(portable) or native_name(portable)
    key = resource_key("topic", name)
    body = {"properties": {"inputSchema": "CloudEventSchemaV1_0", "publisherType": "Custom"}}
    resources.setdefault(
        key,
        Resource(
            key,
            "namespace-topic",
            name,
            purpose or f"topic {portable}",
            body,
            {
                "terraform": Template(
                    "azapi_resource",
                    {"type": TOPIC_TYPE, "name": name, "parent_id": parent_id, "body": body},
                ),
                "bicep": Template(TOPIC_TYPE, body, parent=NAMESPACE_KEY),
            },
        ),
    )
    return key


def _subscription(
    resources: dict[str, Resource],
    config: AzureConfig,
    topic_key: str,
    name: str,
    portable: str,
    native: Mapping[str, Any] | None,
    lock: float,
    max_delivery_count: int,
) -> None:
    body = subscription_body(native, lock, max_delivery_count, config.arm_dead_letter_container)
    topic = resources[topic_key].name
    key = resource_key("subscription", topic, name)
    resources[key] = Resource(
        key,
        "event-subscription",
        f"{topic}/{name}",
        f"subscription {portable}",
        body,
        {
            "terraform": Template(
                "azapi_resource",
                {
                    "type": SUBSCRIPTION_TYPE,
                    "name": name,
                    "parent_id": Ref(topic_key, "id"),
                    "body": body,
                },
            ),
            "bicep": Template(SUBSCRIPTION_TYPE, body, parent=topic_key, name=name),
        },
    )


def _push_plan(
    config: AzureConfig, specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """Basic topics with webhook subscriptions (JSON only: the webhook URL is the adapter's)."""
    resources: dict[str, Resource] = {}
    for portable in topics_of(specs, publications):
        name = config.topics.get(portable) or native_name(portable)
        key = resource_key("topic", name)
        resources[key] = Resource(
            key, "basic-topic", name, f"topic {portable}", {"inputSchema": "CloudEventSchemaV1_0"}
        )
    residuals: dict[str, str] = {}
    for spec in specs:
        compiled = compile_filter(spec.filter)
        native = compiled.native if isinstance(compiled.native, Mapping) else None
        residual = compiled.residual if native is not None else spec.filter
        if residual is not None:
            residuals[spec.name] = filter_text(residual)
        name = native_name(spec.name)
        topic = config.topics.get(spec.topic) or native_name(spec.topic)
        properties = {
            "destination": {
                "endpointType": "WebHook",
                "endpointUrl": config.webhook_url or "WEBHOOK_URL",
            },
            "filter": dict(native or {}),
            "retryPolicy": {"maxDeliveryAttempts": spec.policy.max_delivery_attempts},
            "eventDeliverySchema": "CloudEventSchemaV1_0",
        }
        key = resource_key("subscription", topic, name)
        resources[key] = Resource(
            key, "webhook-subscription", f"{topic}/{name}", f"subscription {spec.name}", properties
        )
    notes = ("push: the adapter serves the webhook; its URL carries a token from webhook_secret",)
    return ProvisioningPlan("azure", tuple(resources.values()), residuals, notes)
