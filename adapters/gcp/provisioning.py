"""Topics, subscriptions and dead-letter targets on Pub/Sub, from portable subscription specs.

Policy: Pub/Sub bounds what it can do natively, so some values are clamped
and the adapter makes up the difference client-side:
- max_delivery_attempts -> dead_letter_policy.max_delivery_attempts, clamped
  to Pub/Sub's 5..100; below 5 the adapter dead-letters itself (a nack that
  uses up the portable count, or a delivery past it after a lease expired).
  The portable count is kept in the subscription's label
  ``polybus-max-delivery-attempts``, so an adapter that did not provision the
  subscription honours it too;
- retry backoff -> retry_policy minimum/maximum_backoff, clamped to 0..600 s;
- ack_deadline -> ack_deadline_seconds (10..600 s, rounded up to whole
  seconds; the capabilities refuse values outside that range);
- ordered -> enable_message_ordering (the ordering key is set on publish from
  the ``partitionkey`` extension).

A subscription's dead letters go to topic *and* subscription
``<dead_letter_name>`` (default ``<subscription>-dlq``). Every function here
translates SDK errors with errors.translate_errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import AlreadyExists, NotFound
from google.cloud import pubsub_v1
from google.protobuf import field_mask_pb2

from polybus.adapters.gcp.errors import translate_errors
from polybus.adapters.gcp.mapping import subscription_path, topic_path
from polybus.adapters.gcp.plan import (  # the pure part, shared with `polybus provision`
    ATTEMPTS_LABEL,
    IMMUTABLE,
    MUTABLE,
    Route,
    SubscriptionPlan,
    client_side_limit,
    native_attempts,
    plan_subscription,
)

__all__ = [
    "Route",
    "SubscriptionPlan",
    "apply",
    "create_topic",
    "delete",
    "lookup_route",
    "native_attempts",
    "plan_subscription",
]

def create_topic(publisher: Any, path: str) -> None:
    """Create the topic unless it exists."""
    with translate_errors(f"create topic {path}"), contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=path)


def apply(subscriber: Any, plan: SubscriptionPlan, before_recreate: Callable[[str], None]) -> None:
    """Create the dead-letter subscription and the subscription, or bring them in line.

    The topics must exist. When an immutable setting differs the subscription
    is deleted and created again; `before_recreate(path)` runs first (the
    adapter stops its stream there).
    """
    route = plan.route
    with translate_errors(f"provision {plan.subscription}"):
        with contextlib.suppress(AlreadyExists):
            subscriber.create_subscription(
                request={"name": route.dead_letter_subscription, "topic": route.dead_letter_topic}
            )
        try:
            subscriber.create_subscription(request=plan.settings)
        except AlreadyExists:
            _reconcile(subscriber, plan, before_recreate)


def _reconcile(
    subscriber: Any, plan: SubscriptionPlan, before_recreate: Callable[[str], None]
) -> None:
    """Update changed mutable settings in place; recreate when immutable ones differ."""
    wanted = pubsub_v1.types.Subscription(**plan.settings)
    current = subscriber.get_subscription(subscription=plan.subscription)
    if any(getattr(current, f) != getattr(wanted, f) for f in IMMUTABLE):
        before_recreate(plan.subscription)
        subscriber.delete_subscription(subscription=plan.subscription)
        subscriber.create_subscription(request=plan.settings)
        return
    changed = [f for f in MUTABLE if getattr(current, f) != getattr(wanted, f)]
    if changed:
        subscriber.update_subscription(
            subscription=wanted, update_mask=field_mask_pb2.FieldMask(paths=changed)
        )


def lookup_route(subscriber: Any, project: str, subscription: str, missing_ok: bool) -> Route:
    """The route of an existing subscription (its dead-letter policy and attempts label).

    A missing subscription raises AdapterError, or with `missing_ok` gives
    the default ``<subscription>-dlq`` route.
    """
    path = subscription_path(project, subscription)
    default = f"{subscription}-dlq"
    with translate_errors(f"look up {path}"):
        try:
            current = subscriber.get_subscription(subscription=path)
        except NotFound:
            if not missing_ok:
                raise
            return Route(subscription_path(project, default), topic_path(project, default), None)
    topic = current.dead_letter_policy.dead_letter_topic or topic_path(project, default)
    dead_id = topic.rsplit("/", 1)[1]
    label = current.labels.get(ATTEMPTS_LABEL, "")
    portable = int(label) if label.isdigit() else None
    return Route(f"projects/{project}/subscriptions/{dead_id}", topic, client_side_limit(portable))


def delete(publisher: Any, subscriber: Any, path: str, route: Route) -> None:
    """Delete the subscription, its dead-letter subscription and topic (missing ones are fine)."""
    with translate_errors(f"delete {path}"):
        for sub in (path, route.dead_letter_subscription):
            with contextlib.suppress(NotFound):
                subscriber.delete_subscription(subscription=sub)
        with contextlib.suppress(NotFound):
            publisher.delete_topic(topic=route.dead_letter_topic)
