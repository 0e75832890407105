"""Portable names and delivery policies mapped to Pub/Sub resources and settings.

Names: the portable topic ``orders`` is ``projects/<project>/topics/orders``
and the subscription ``billing`` is ``projects/<project>/subscriptions/billing``
when the name is a valid Pub/Sub id (starts with a letter, 3-255 of
``[A-Za-z0-9-_.~+%]``, not ``goog...``). Other names are made valid
reversibly: characters outside that set are percent-encoded and a name that is
too short or starts wrongly gets the prefix ``pb-``. A subscription's dead
letters go to topic *and* subscription ``<dead_letter_name>`` (default
``<subscription>-dlq``).

Policy: Pub/Sub bounds what it can do natively, so values are clamped and the
adapter makes up the difference client-side:
- max_delivery_attempts -> dead_letter_policy.max_delivery_attempts, clamped
  to Pub/Sub's 5..100; below 5 the adapter dead-letters itself when a nack
  uses up the portable count;
- retry backoff -> retry_policy minimum/maximum_backoff, clamped to 0..600 s;
- ack_deadline -> ack_deadline_seconds, clamped to 10..600 s (the streaming
  client also stops extending a lease after this long);
- ordered -> enable_message_ordering (the ordering key is set on publish from
  the ``partitionkey`` extension).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from polybus.core.contract import DeliveryPolicy, SubscriptionSpec

_VALID_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_SAFE = "-_.~+"
MIN_NATIVE_ATTEMPTS = 5
MAX_NATIVE_ATTEMPTS = 100
MAX_BACKOFF = 600.0


def resource_id(name: str) -> str:
    """A valid Pub/Sub topic/subscription id for a portable name (identity when already valid)."""
    if _VALID_ID.fullmatch(name) and not name.startswith("goog"):
        return name
    encoded = quote(name, safe=_SAFE)
    if not _VALID_ID.fullmatch(encoded) or encoded.startswith("goog"):
        encoded = "pb-" + encoded
    return encoded[:255]


@functools.lru_cache(maxsize=4096)
def topic_path(project: str, topic: str) -> str:
    """``projects/<project>/topics/<id>`` for a portable topic name."""
    return f"projects/{project}/topics/{resource_id(topic)}"


@functools.lru_cache(maxsize=4096)
def subscription_path(project: str, subscription: str) -> str:
    """``projects/<project>/subscriptions/<id>`` for a portable subscription name."""
    return f"projects/{project}/subscriptions/{resource_id(subscription)}"


def native_attempts(policy: DeliveryPolicy) -> int:
    """Pub/Sub's max_delivery_attempts for the policy (clamped to 5..100)."""
    return max(MIN_NATIVE_ATTEMPTS, min(MAX_NATIVE_ATTEMPTS, policy.max_delivery_attempts))


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}


@dataclass(frozen=True)
class SubscriptionPlan:
    """Everything provision() creates for one portable subscription."""

    subscription: str
    topic: str
    dead_letter_topic: str
    dead_letter_subscription: str
    settings: dict[str, Any]


def plan_subscription(
    project: str,
    spec: SubscriptionSpec,
    native_filter: str | None,
    retain_acked: bool,
) -> SubscriptionPlan:
    """The Pub/Sub resources and subscription settings for `spec`."""
    policy = spec.policy
    dead_name = policy.dead_letter_name(spec.name)
    dead_topic = topic_path(project, dead_name)
    minimum = max(0.0, min(MAX_BACKOFF, policy.retry.initial_backoff))
    maximum = max(minimum, min(MAX_BACKOFF, policy.retry.max_backoff))
    name = subscription_path(project, spec.name)
    settings: dict[str, Any] = {
        "name": name,
        "topic": topic_path(project, spec.topic),
        "filter": native_filter or "",
        "ack_deadline_seconds": max(10, min(600, math.ceil(policy.ack_deadline))),
        "enable_message_ordering": policy.ordered,
        "retain_acked_messages": retain_acked,
        "dead_letter_policy": {
            "dead_letter_topic": dead_topic,
            "max_delivery_attempts": native_attempts(policy),
        },
        "retry_policy": {
            "minimum_backoff": _duration(minimum),
            "maximum_backoff": _duration(maximum),
        },
    }
    return SubscriptionPlan(
        subscription=name,
        topic=settings["topic"],
        dead_letter_topic=dead_topic,
        dead_letter_subscription=subscription_path(project, dead_name),
        settings=settings,
    )


IMMUTABLE = ("topic", "filter", "enable_message_ordering")
MUTABLE = ("ack_deadline_seconds", "retain_acked_messages", "dead_letter_policy", "retry_policy")
