"""The emulator's state behind the gRPC surface: topics, subscriptions, publishing.

Methods take and return the raw protobuf messages of google.pubsub.v1 and
raise `RpcError(code, message)` with the status code Pub/Sub returns; the
gRPC layer (server.py) turns that into the call's status.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.pubsub_v1.types import pubsub as types

from polybus.adapters.gcp.emulator.errors import RpcError
from polybus.adapters.gcp.emulator.filter import FilterSyntaxError, compile_pubsub_filter
from polybus.adapters.gcp.emulator.iam import PolicyStore
from polybus.adapters.gcp.emulator.schemas import SchemaRegistry
from polybus.adapters.gcp.emulator.snapshots import (
    SnapshotState,
    check_snapshot_name,
    new_snapshot,
)
from polybus.adapters.gcp.emulator.subscription import DeliveryRules, Entry, SubscriptionState

PubsubMessage = types.PubsubMessage.pb()
Topic = types.Topic.pb()
Subscription = types.Subscription.pb()

DELETED_TOPIC = "_deleted-topic_"
MAX_PUBLISH_BYTES = 10 * 1000 * 1000
MAX_PUBLISH_MESSAGES = 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
_RESOURCE_ID = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_TOPIC_NAME = re.compile(rf"projects/([^/]+)/topics/({_RESOURCE_ID})")
_SUBSCRIPTION_NAME = re.compile(rf"projects/([^/]+)/subscriptions/({_RESOURCE_ID})")


@dataclass
class TopicState:
    """A topic and the subscriptions attached to it (a tuple, replaced on change)."""

    config: Any
    subscriptions: tuple[SubscriptionState, ...] = ()
    snapshots: tuple[SnapshotState, ...] = ()  # snapshots retaining what the topic receives


def _check_name(name: str, pattern: re.Pattern[str], kind: str) -> None:
    match = pattern.fullmatch(name)
    if match is None or match.group(2).startswith("goog"):
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [{kind}] name: ({name})")


def _seconds(duration: Any) -> float:
    return float(duration.seconds) + duration.nanos / 1e9


class Backend:
    """Every topic and subscription of one emulator, safe to call from many threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._topics: dict[str, TopicState] = {}
        self._subscriptions: dict[str, SubscriptionState] = {}
        self._snapshots: dict[str, SnapshotState] = {}
        self._message_ids = itertools.count(1)
        self.schemas = SchemaRegistry()
        self.iam = PolicyStore(self.exists)

    def exists(self, name: str) -> bool:
        """Whether `name` is a topic, subscription, snapshot or schema of this emulator."""
        return (
            name in self._topics
            or name in self._subscriptions
            or name in self._snapshots
            or self.schemas.exists(name)
        )

    # -- topics -----------------------------------------------------------------

    def create_topic(self, topic: Any) -> Any:
        """CreateTopic: ALREADY_EXISTS when present, INVALID_ARGUMENT for a bad name."""
        _check_name(topic.name, _TOPIC_NAME, "topic")
        if topic.HasField("schema_settings"):
            self.schemas.check_settings(topic.schema_settings)
        with self._lock:
            if topic.name in self._topics:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            self._topics[topic.name] = TopicState(topic)
        return topic

    def get_topic(self, name: str) -> Any:
        """GetTopic: NOT_FOUND when absent."""
        return self._topic(name).config

    def _topic(self, name: str) -> TopicState:
        state = self._topics.get(name)
        if state is None:
            _check_name(name, _TOPIC_NAME, "topic")
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
        return state

    def list_topics(self, project: str) -> list[str]:
        """Names of the project's topics, sorted."""
        prefix = f"{project}/topics/"
        with self._lock:
            return sorted(name for name in self._topics if name.startswith(prefix))

    def list_topic_subscriptions(self, topic: str) -> list[str]:
        """Names of the subscriptions attached to `topic`, sorted."""
        return sorted(sub.name for sub in self._topic(topic).subscriptions)

    def delete_topic(self, name: str) -> None:
        """DeleteTopic: its subscriptions stay, detached onto `_deleted-topic_`."""
        with self._lock:
            state = self._topic(name)
            del self._topics[name]
            self.iam.forget(name)
            for sub in state.subscriptions:
                with sub.cond:
                    sub.topic = DELETED_TOPIC
                    sub.config.topic = DELETED_TOPIC

    # -- publishing -------------------------------------------------------------

    def publish(self, topic: str, messages: Sequence[Any]) -> list[str]:
        """Publish: assign ids and a publish time, then hand copies to each subscription."""
        state = self._topic(topic)
        if not messages:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "The request contains no messages")
        if len(messages) > MAX_PUBLISH_MESSAGES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The value for message_count is too large. You passed {len(messages)} in the "
                f"request, but the maximum value is {MAX_PUBLISH_MESSAGES}.",
            )
        config = state.config
        schema_settings = config.schema_settings if config.HasField("schema_settings") else None
        wall = time.time()
        seconds = int(wall)
        nanos = int((wall - seconds) * 1e9)
        sized = []
        total = 0
        ids = []
        for msg in messages:
            attributes = msg.attributes
            if not msg.data and not attributes:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Some messages in the publish request are empty: a message needs data or "
                    "at least one attribute",
                )
            if attributes:
                _check_attributes(attributes)
            if schema_settings is not None:
                msg.attributes.update(self.schemas.check_publish(schema_settings, msg.data))
            message_id = str(next(self._message_ids))
            msg.message_id = message_id
            msg.publish_time.seconds = seconds
            msg.publish_time.nanos = nanos
            size = msg.ByteSize()
            total += size
            sized.append((msg, size))
            ids.append(message_id)
        if total > MAX_PUBLISH_BYTES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "The publish request is larger than 10 MB"
            )
        for sub in state.subscriptions:
            with sub.cond:
                sub.enqueue(sized, wall)
        if state.snapshots:
            retained = [(msg, size, wall) for msg, size in sized]
            for snapshot in state.snapshots:
                snapshot.retain(retained)
        return ids

    # -- snapshots ----------------------------------------------------------------

    def create_snapshot(self, request: Any) -> Any:
        """CreateSnapshot of a subscription's unacknowledged messages."""
        check_snapshot_name(request.name)
        sub = self.subscription(request.subscription)
        with self._lock:
            if request.name in self._snapshots:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Snapshot already exists")
            topic = self._topics.get(sub.topic)
            if topic is None:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "The subscription's topic was deleted: it cannot be snapshotted",
                )
            with sub.cond:
                snapshot = new_snapshot(request, sub.topic, sub.unacked(), time.time())
            self._snapshots[request.name] = snapshot
            topic.snapshots = (*topic.snapshots, snapshot)
        return snapshot.config

    def snapshot(self, name: str) -> SnapshotState:
        """The snapshot; NOT_FOUND when absent."""
        state = self._snapshots.get(name)
        if state is None:
            check_snapshot_name(name)
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Snapshot does not exist")
        return state

    def list_snapshots(self, project: str) -> list[str]:
        """Names of the project's snapshots, sorted."""
        prefix = f"{project}/snapshots/"
        with self._lock:
            return sorted(name for name in self._snapshots if name.startswith(prefix))

    def update_snapshot(self, config: Any, paths: Iterable[str]) -> Any:
        """UpdateSnapshot: labels only (expire_time is Pub/Sub's to compute)."""
        state = self.snapshot(config.name)
        for path in paths:
            if path != "labels":
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Invalid update_mask provided: {path}"
                )
            state.config.labels.clear()
            state.config.labels.update(config.labels)
        return state.config

    def delete_snapshot(self, name: str) -> None:
        """DeleteSnapshot: its retained messages are released."""
        with self._lock:
            state = self.snapshot(name)
            del self._snapshots[name]
            topic = self._topics.get(state.topic)
            if topic is not None:
                topic.snapshots = tuple(s for s in topic.snapshots if s is not state)
        self.iam.forget(name)

    def seek_snapshot(self, subscription: str, name: str) -> None:
        """Seek a subscription to a snapshot of its own topic."""
        sub = self.subscription(subscription)
        snapshot = self.snapshot(name)
        if snapshot.topic != sub.topic:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Snapshot {name} belongs to topic {snapshot.topic}, not to the subscription's "
                f"topic {sub.topic}",
            )
        messages = snapshot.retained(time.time())
        with sub.cond:
            sub.seek_to(messages)

    # -- subscriptions ----------------------------------------------------------

    def create_subscription(self, config: Any) -> Any:
        """CreateSubscription with the validation Pub/Sub applies."""
        _check_name(config.name, _SUBSCRIPTION_NAME, "subscription")
        rules, matches = _rules_of(config)
        with self._lock:
            topic = self._topic(config.topic)
            if config.name in self._subscriptions:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            stored = Subscription()
            stored.CopyFrom(config)
            _fill_defaults(stored, rules)
            sub = SubscriptionState(config.name, config.topic, rules, matches, stored)
            self._subscriptions[config.name] = sub
            topic.subscriptions = (*topic.subscriptions, sub)
        return stored

    def subscription(self, name: str) -> SubscriptionState:
        """The live subscription; NOT_FOUND when absent."""
        sub = self._subscriptions.get(name)
        if sub is None:
            _check_name(name, _SUBSCRIPTION_NAME, "subscription")
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
        return sub

    def update_subscription(self, config: Any, paths: Iterable[str]) -> Any:
        """UpdateSubscription for the mutable settings named in the field mask."""
        sub = self.subscription(config.name)
        paths = list(paths)
        if not paths:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "update_mask is required")
        immutable = {"topic", "filter", "enable_message_ordering", "name"}
        mutable = {
            "ack_deadline_seconds",
            "retain_acked_messages",
            "message_retention_duration",
            "labels",
            "expiration_policy",
            "dead_letter_policy",
            "retry_policy",
            "enable_exactly_once_delivery",
            "detached",
        }
        with sub.cond:
            updated = Subscription()
            updated.CopyFrom(sub.config)
            for path in paths:
                if path in immutable or path not in mutable:
                    raise RpcError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Invalid update_mask provided: {path}"
                    )
                updated.ClearField(path)
                if path == "labels":
                    updated.labels.update(config.labels)
                elif path.endswith(("policy", "duration")):
                    if config.HasField(path):
                        getattr(updated, path).CopyFrom(getattr(config, path))
                else:
                    setattr(updated, path, getattr(config, path))
            rules, _ = _rules_of(updated)
            _fill_defaults(updated, rules)
            sub.rules = rules
            sub.config = updated
            sub.cond.notify_all()
        return updated

    def list_subscriptions(self, project: str) -> list[str]:
        """Names of the project's subscriptions, sorted."""
        prefix = f"{project}/subscriptions/"
        with self._lock:
            return sorted(name for name in self._subscriptions if name.startswith(prefix))

    def delete_subscription(self, name: str) -> None:
        """DeleteSubscription: open streams end with NOT_FOUND."""
        with self._lock:
            sub = self.subscription(name)
            del self._subscriptions[name]
            self.iam.forget(name)
            topic = self._topics.get(sub.topic)
            if topic is not None:
                topic.subscriptions = tuple(s for s in topic.subscriptions if s is not sub)
        with sub.cond:
            sub.deleted = True
            sub.cond.notify_all()

    def forward_dead_letters(self, sub: SubscriptionState) -> None:
        """Publish what `sub` gave up on to its dead-letter topic (call without sub.cond)."""
        with sub.cond:
            dead = sub.take_dead_letters()
            topic = sub.rules.dead_letter_topic
            source = sub.name
        if not dead:
            return
        project = source.split("/")[1]
        copies = [_dead_letter_copy(entry, source, project) for entry in dead]
        # Without the dead-letter topic Pub/Sub cannot forward either: the messages are dropped.
        with contextlib.suppress(RpcError):
            self.publish(topic, copies)


def _dead_letter_copy(entry: Entry, source: str, project: str) -> Any:
    copy = PubsubMessage()
    copy.CopyFrom(entry.msg)
    copy.ClearField("message_id")
    copy.ClearField("publish_time")
    attributes = copy.attributes
    attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = str(entry.attempts)
    attributes["CloudPubSubDeadLetterSourceSubscription"] = source.rsplit("/", 1)[-1]
    attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = project
    published = entry.msg.publish_time.ToJsonString()
    attributes["CloudPubSubDeadLetterSourceTopicPublishTime"] = published
    return copy


def _check_attributes(attributes: Any) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"A message has {len(attributes)} attributes; at most {MAX_ATTRIBUTES} are allowed",
        )
    for key, value in attributes.items():
        if len(key) > MAX_ATTRIBUTE_KEY_BYTES // 4 or len(value) > MAX_ATTRIBUTE_VALUE_BYTES // 4:
            if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"An attribute key is longer than {MAX_ATTRIBUTE_KEY_BYTES} bytes: {key[:40]}",
                )
            if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Attribute {key} has a value over {MAX_ATTRIBUTE_VALUE_BYTES} bytes",
                )
        if key.startswith("goog"):
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Attribute keys must not start with goog: {key}"
            )


def _rules_of(config: Any) -> tuple[DeliveryRules, Any]:
    """Validate a Subscription's settings; the delivery rules and the filter predicate."""
    bad = grpc.StatusCode.INVALID_ARGUMENT
    if config.push_config.push_endpoint:
        raise RpcError(grpc.StatusCode.UNIMPLEMENTED, "Push subscriptions are not emulated")
    ack_deadline = config.ack_deadline_seconds or 10
    if not 10 <= ack_deadline <= 600:
        raise RpcError(bad, "The ack deadline must be between 10 and 600 seconds")
    retention = 7 * 24 * 3600.0
    if config.HasField("message_retention_duration"):
        retention = _seconds(config.message_retention_duration)
        if not 600 <= retention <= 7 * 24 * 3600:
            raise RpcError(bad, "message_retention_duration must be between 10 minutes and 7 days")
    try:
        matches = compile_pubsub_filter(config.filter)
    except FilterSyntaxError as exc:
        raise RpcError(bad, f"Invalid filter: {exc}") from exc
    max_attempts, dead_topic = 0, ""
    if config.HasField("dead_letter_policy") and config.dead_letter_policy.dead_letter_topic:
        dead_topic = config.dead_letter_policy.dead_letter_topic
        _check_name(dead_topic, _TOPIC_NAME, "topic")
        max_attempts = config.dead_letter_policy.max_delivery_attempts or 5
        if not 5 <= max_attempts <= 100:
            raise RpcError(bad, "max_delivery_attempts must be between 5 and 100")
    min_backoff, max_backoff = -1.0, 600.0
    if config.HasField("retry_policy"):
        policy = config.retry_policy
        min_backoff = _seconds(policy.minimum_backoff) if policy.HasField("minimum_backoff") else 10
        if policy.HasField("maximum_backoff"):
            max_backoff = _seconds(policy.maximum_backoff)
        if not (0 <= min_backoff <= 600 and 0 <= max_backoff <= 600 and min_backoff <= max_backoff):
            raise RpcError(bad, "retry_policy backoffs must be 0-600 s with minimum <= maximum")
    rules = DeliveryRules(
        ack_deadline=float(ack_deadline),
        ordered=config.enable_message_ordering,
        max_delivery_attempts=max_attempts,
        dead_letter_topic=dead_topic,
        min_backoff=min_backoff,
        max_backoff=max_backoff,
        retention=retention,
        retain_acked=config.retain_acked_messages,
        exactly_once=config.enable_exactly_once_delivery,
    )
    return rules, matches


def _fill_defaults(stored: Any, rules: DeliveryRules) -> None:
    """Fill the settings Pub/Sub reports back with their defaults."""
    stored.ack_deadline_seconds = int(rules.ack_deadline)
    if not stored.HasField("message_retention_duration"):
        stored.message_retention_duration.seconds = int(rules.retention)
    if rules.max_delivery_attempts:
        stored.dead_letter_policy.max_delivery_attempts = rules.max_delivery_attempts
    if stored.HasField("retry_policy"):
        policy = stored.retry_policy
        if not policy.HasField("minimum_backoff"):
            policy.minimum_backoff.seconds = 10
        if not policy.HasField("maximum_backoff"):
            policy.maximum_backoff.seconds = 600
    stored.state = types.Subscription.State.ACTIVE
