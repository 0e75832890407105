"""Pub/Sub plans: the settings `provisioning` applies, and `polybus provision`'s plan (no SDK).

`plan_subscription` maps a portable spec to Pub/Sub subscription settings
(see provisioning.py for the clamping rules); `plan` lists everything the
adapter creates for an app: each topic, each subscription with its native
filter, dead-letter policy and retry policy, and each dead-letter topic with
its subscription, as JSON and Terraform (google provider).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from polybus.adapters.gcp.config import parse_config
from polybus.adapters.gcp.filters import compile_filter
from polybus.adapters.gcp.mapping import resource_id, subscription_path, topic_path
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.filters.dialects import Filter
from polybus.core.provisioning_plan import (
    Block,
    ListedSubscription,
    ProvisioningPlan,
    Ref,
    Resource,
    Template,
    filter_text,
    resource_key,
    topics_of,
)

MIN_NATIVE_ATTEMPTS = 5
MAX_NATIVE_ATTEMPTS = 100
MIN_ACK_DEADLINE = 10
MAX_ACK_DEADLINE = 600
MAX_BACKOFF = 600.0
ATTEMPTS_LABEL = "polybus-max-delivery-attempts"
IMMUTABLE = ("topic", "filter", "enable_message_ordering")
MUTABLE = (
    "ack_deadline_seconds",
    "retain_acked_messages",
    "dead_letter_policy",
    "retry_policy",
    "labels",
)


def native_attempts(policy: DeliveryPolicy) -> int:
    """Pub/Sub's max_delivery_attempts for the policy (clamped to 5..100)."""
    return max(MIN_NATIVE_ATTEMPTS, min(MAX_NATIVE_ATTEMPTS, policy.max_delivery_attempts))


def client_side_limit(portable: int | None) -> int | None:
    """The attempt count the adapter enforces itself (None: Pub/Sub's own policy does)."""
    return portable if portable is not None and portable < MIN_NATIVE_ATTEMPTS else None


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}


@dataclass(frozen=True)
class Route:
    """Where a subscription's dead letters go, and from which attempt the adapter sends them."""

    dead_letter_subscription: str
    dead_letter_topic: str
    exhausted_at: int | None  # None: Pub/Sub's dead-letter policy counts the attempts


@dataclass(frozen=True)
class SubscriptionPlan:
    """Everything provision() creates for one portable subscription."""

    subscription: str
    topic: str
    route: Route
    settings: dict[str, Any]


def plan_subscription(
    project: str, spec: SubscriptionSpec, native_filter: str | None, retain_acked: bool
) -> SubscriptionPlan:
    """The Pub/Sub resources and subscription settings for `spec`."""
    policy = spec.policy
    dead_name = policy.dead_letter_name(spec.name)
    dead_topic = topic_path(project, dead_name)
    minimum = max(0.0, min(MAX_BACKOFF, policy.retry.initial_backoff))
    maximum = max(minimum, min(MAX_BACKOFF, policy.retry.max_backoff))
    deadline = max(MIN_ACK_DEADLINE, min(MAX_ACK_DEADLINE, math.ceil(policy.ack_deadline)))
    name = subscription_path(project, spec.name)
    settings: dict[str, Any] = {
        "name": name,
        "topic": topic_path(project, spec.topic),
        "filter": native_filter or "",
        "ack_deadline_seconds": deadline,
        "enable_message_ordering": policy.ordered,
        "retain_acked_messages": retain_acked,
        "labels": {ATTEMPTS_LABEL: str(policy.max_delivery_attempts)},
        "dead_letter_policy": {
            "dead_letter_topic": dead_topic,
            "max_delivery_attempts": native_attempts(policy),
        },
        "retry_policy": {
            "minimum_backoff": _duration(minimum),
            "maximum_backoff": _duration(maximum),
        },
    }
    route = Route(
        subscription_path(project, dead_name),
        dead_topic,
        client_side_limit(policy.max_delivery_attempts),
    )
    return SubscriptionPlan(name, settings["topic"], route, settings)


def native_filter(spec: SubscriptionSpec, content_mode: str) -> tuple[str | None, Filter | None]:
    """The subscription's Pub/Sub filter and the residual the consumer evaluates (as the adapter)."""
    compiled = compile_filter(spec.filter)
    native = compiled.native if isinstance(compiled.native, str) else None
    if native is not None and content_mode == "structured" and "content-type" in native:
        native = None  # structured messages carry the event format in content-type
    return native, compiled.residual if native is not None else spec.filter


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """Every topic, subscription and dead-letter target the adapter creates for `specs`."""
    config = parse_config(section)
    project = config.project
    resources: dict[str, Resource] = {}
    topics: dict[str, str] = {}

    def topic(name: str, purpose: str) -> str:
        path = topic_path(project, name)
        key = resource_key("topic", resource_id(name))
        if key not in resources:
            resources[key] = Resource(
                key,
                "topic" if purpose.startswith("topic") else "dead-letter-topic",
                path,
                purpose,
                {"name": path},
                {
                    "terraform": Template(
                        "google_pubsub_topic", {"project": project, "name": resource_id(name)}
                    )
                },
            )
        topics[path] = key
        return key

    for name in topics_of(specs, publications):
        topic(name, f"topic {name}")
    residuals: dict[str, str] = {}
    for spec in specs:
        native, residual = native_filter(spec, config.content_mode)
        if residual is not None:
            residuals[spec.name] = filter_text(residual)
        planned = plan_subscription(project, spec, native, config.retain_acked)
        dead_name = spec.policy.dead_letter_name(spec.name)
        dead_topic = topic(dead_name, f"subscription {spec.name} (dead letters)")
        dead_key = resource_key("subscription", resource_id(dead_name))
        resources.setdefault(
            dead_key,
            Resource(
                dead_key,
                "dead-letter-subscription",
                planned.route.dead_letter_subscription,
                f"subscription {spec.name} (dead letters)",
                {
                    "name": planned.route.dead_letter_subscription,
                    "topic": planned.route.dead_letter_topic,
                },
                {
                    "terraform": Template(
                        "google_pubsub_subscription",
                        {
                            "project": project,
                            "name": resource_id(dead_name),
                            "topic": Ref(dead_topic, "id"),
                        },
                    )
                },
            ),
        )
        key = resource_key("subscription", resource_id(spec.name))
        resources[key] = Resource(
            key,
            "subscription",
            planned.subscription,
            f"subscription {spec.name}",
            planned.settings,
            {
                "terraform": Template(
                    "google_pubsub_subscription", _terraform(project, spec, planned, topics)
                )
            },
        )
    notes = () if not residuals else ("residual filters run in the consumer: see residual_filters",)
    return ProvisioningPlan("gcp", tuple(resources.values()), residuals, notes)


def _seconds(duration: Mapping[str, int]) -> str:
    total = duration["seconds"] + duration["nanos"] / 1e9
    return f"{total:g}s"


def _terraform(
    project: str, spec: SubscriptionSpec, planned: SubscriptionPlan, topics: Mapping[str, str]
) -> dict[str, Any]:
    settings = planned.settings
    args: dict[str, Any] = {
        "project": project,
        "name": resource_id(spec.name),
        "topic": Ref(topics[settings["topic"]], "id"),
        "ack_deadline_seconds": settings["ack_deadline_seconds"],
        "enable_message_ordering": settings["enable_message_ordering"],
        "retain_acked_messages": settings["retain_acked_messages"],
        "labels": settings["labels"],
        "dead_letter_policy": Block(
            {
                "dead_letter_topic": Ref(topics[planned.route.dead_letter_topic], "id"),
                "max_delivery_attempts": settings["dead_letter_policy"]["max_delivery_attempts"],
            }
        ),
        "retry_policy": Block(
            {
                "minimum_backoff": _seconds(settings["retry_policy"]["minimum_backoff"]),
                "maximum_backoff": _seconds(settings["retry_policy"]["maximum_backoff"]),
            }
        ),
    }
    if settings["filter"]:
        args["filter"] = settings["filter"]
    return args


def _portable(resource: str) -> str:
    """The portable name behind a Pub/Sub id (`mapping.resource_id` reversed, as far as it goes)."""
    name = resource.rsplit("/", 1)[-1]
    return unquote(name[3:] if name.startswith("pb-") and "%" in name else name)


def list_subscriptions(adapter: Any) -> list[ListedSubscription]:
    """The project's subscriptions polybus made (they carry its attempts label), not dead-letter ones."""
    project = adapter.config.project
    found = []
    for sub in adapter.subscriber.list_subscriptions(request={"project": f"projects/{project}"}):
        if ATTEMPTS_LABEL not in sub.labels:
            continue
        dead = sub.dead_letter_policy.dead_letter_topic
        resources = (f"subscription {sub.name}", f"topic {sub.topic}") + (
            (f"dead-letter topic {dead}",) if dead else ()
        )
        found.append(ListedSubscription(_portable(sub.name), _portable(sub.topic), resources))
    return sorted(found, key=lambda s: s.name)
