"""Create, find and remove what a topic and a subscription need on AWS, idempotently.

Per topic: a custom event bus and (config `archive`) an archive of every event
on it, for replay. Per subscription: a rule on the topic's bus with the
compiled event pattern; an SQS queue as the rule's only target, with a queue
policy that lets EventBridge send from that rule; a dead-letter queue, used
three ways: the SQS redrive policy (maxReceiveCount = the policy's
max_delivery_attempts) for messages received that often without being
deleted, the target's DeadLetterConfig for events EventBridge cannot deliver
to the queue, and the adapter's explicit dead_letter(). The queue is tagged
with its topic, so any adapter instance with the same configuration can find
a subscription again from its name alone.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from polybus.adapters.aws import mapping
from polybus.adapters.aws.config import AwsConfig
from polybus.adapters.aws.errors import error_code, is_not_found, translate_errors
from polybus.adapters.aws.filters import event_pattern
from polybus.adapters.aws.monitoring import OldestAge
from polybus.adapters.aws.plan import (  # shared with the plan, which imports no SDK
    MAX_VISIBILITY,
    MESSAGE_GROUP,
    POLICY_SID,
    RETENTION_SECONDS,
    SUBSCRIPTION_TAG,
    TARGET_ID,
    TARGET_RETRY,
    TOPIC_TAG,
    queue_policy,
)
from polybus.core.contract import BacklogStats, SubscriptionSpec
from polybus.core.errors import AdapterError, Problem, ValidationError
from polybus.core.filters.dialects import Filter


@dataclass(frozen=True)
class Bus:
    """A topic's event bus (and its archive, when archiving is on)."""

    name: str
    arn: str
    archive_arn: str | None


@dataclass(frozen=True)
class Subscription:
    """Everything the consumer and replay need to know about a provisioned subscription."""

    name: str
    topic: str
    bus: str
    rule: str
    rule_arn: str
    queue_url: str
    dlq_url: str
    max_attempts: int
    fifo: bool = False


class Provisioner:
    """Idempotent create / lookup / delete of buses, rules and queues."""

    def __init__(
        self,
        events_client: Any,
        sqs_client: Any,
        config: AwsConfig,
        cloudwatch_client: Any = None,
    ) -> None:
        self._events = events_client
        self._sqs = sqs_client
        self._oldest_age = OldestAge(cloudwatch_client)
        self._config = config
        self._buses: dict[str, Bus] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._specs: dict[str, SubscriptionSpec] = {}
        self._lock = threading.Lock()

    # -- topics ---------------------------------------------------------------

    def bus(self, topic: str) -> Bus:
        """The topic's bus, created (with its archive) on first use and cached."""
        found = self._buses.get(topic)
        if found is not None:
            return found
        name = mapping.bus_name(self._config.bus_prefix, topic)
        with translate_errors(f"create event bus {name}"):
            try:
                arn = self._events.create_event_bus(Name=name)["EventBusArn"]
            except ClientError as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":
                    raise
                arn = self._events.describe_event_bus(Name=name)["Arn"]
        archive_arn = self._ensure_archive(name, arn) if self._config.archive else None
        bus = Bus(name, arn, archive_arn)
        with self._lock:
            self._buses[topic] = bus
        return bus

    def forget_bus(self, topic: str) -> None:
        """Drop the cached bus (e.g. after AWS said it no longer exists)."""
        with self._lock:
            self._buses.pop(topic, None)

    def _ensure_archive(self, bus: str, bus_arn: str) -> str:
        name = mapping.archive_name(bus)
        with translate_errors(f"create archive {name}"):
            try:
                return str(
                    self._events.create_archive(
                        ArchiveName=name,
                        EventSourceArn=bus_arn,
                        Description=f"polybus: every event on {bus}, for replay",
                        RetentionDays=self._config.archive_retention_days,
                    )["ArchiveArn"]
                )
            except ClientError as exc:
                if error_code(exc) != "ResourceAlreadyExistsException":
                    raise
                return str(self._events.describe_archive(ArchiveName=name)["ArchiveArn"])

    # -- subscriptions --------------------------------------------------------

    def provision(self, spec: SubscriptionSpec) -> tuple[Subscription, Filter | None]:
        """Create or update the subscription; return it and the residual filter."""
        bus = self.bus(spec.topic)
        pattern, residual = event_pattern(spec.filter)
        rule = mapping.rule_name(self._config.queue_prefix, spec.name)
        fifo = spec.policy.ordered
        prefix = self._config.queue_prefix
        queue = mapping.queue_name(prefix, spec.name, fifo=fifo)
        dlq = mapping.queue_name(prefix, spec.policy.dead_letter_name(spec.name), fifo=fifo)
        self._check_previous(spec, rule)
        fifo_attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
        tags = {TOPIC_TAG: spec.topic[:256], SUBSCRIPTION_TAG: spec.name[:256]}
        with translate_errors(f"provision subscription {spec.name}"):
            rule_arn = self._events.put_rule(
                Name=rule,
                EventBusName=bus.name,
                EventPattern=pattern,
                State="ENABLED",
                Description=f"polybus subscription {spec.name}"[:512],
            )["RuleArn"]
            dlq_url, dlq_arn = self._ensure_queue(
                dlq,
                {"MessageRetentionPeriod": RETENTION_SECONDS, **fifo_attributes},
                tags,
                rule_arn,
                merge=True,
            )
            attributes = {
                **fifo_attributes,
                "VisibilityTimeout": str(min(MAX_VISIBILITY, math.ceil(spec.policy.ack_deadline))),
                "MessageRetentionPeriod": RETENTION_SECONDS,
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": dlq_arn,
                        "maxReceiveCount": spec.policy.max_delivery_attempts,
                    }
                ),
            }
            queue_url, queue_arn = self._ensure_queue(
                queue, attributes, tags, rule_arn, merge=False
            )
            target: dict[str, Any] = {
                "Id": TARGET_ID,
                "Arn": queue_arn,
                "RetryPolicy": TARGET_RETRY,
                "DeadLetterConfig": {"Arn": dlq_arn},
            }
            if fifo:
                target["SqsParameters"] = {"MessageGroupId": MESSAGE_GROUP}
            answer = self._events.put_targets(Rule=rule, EventBusName=bus.name, Targets=[target])
        if answer.get("FailedEntryCount"):
            raise AdapterError(
                f"aws: put_targets for {spec.name} failed: {answer['FailedEntries']}"
            )
        subscription = Subscription(
            name=spec.name,
            topic=spec.topic,
            bus=bus.name,
            rule=rule,
            rule_arn=rule_arn,
            queue_url=queue_url,
            dlq_url=dlq_url,
            max_attempts=spec.policy.max_delivery_attempts,
            fifo=fifo,
        )
        with self._lock:
            self._subscriptions[spec.name] = subscription
            self._specs[spec.name] = spec
        return subscription, residual

    def spec(self, name: str) -> SubscriptionSpec | None:
        """The spec this provisioner last provisioned `name` from (None: not provisioned here)."""
        return self._specs.get(name)

    def lookup(self, name: str) -> Subscription:
        """The subscription named `name`, from the cache or rebuilt from its queue's tags."""
        found = self._subscriptions.get(name)
        if found is not None:
            return found
        queue = mapping.queue_name(self._config.queue_prefix, name)
        fifo_queue = mapping.queue_name(self._config.queue_prefix, name, fifo=True)
        with translate_errors(f"look up subscription {name}"):
            try:
                queue_url = (
                    self._find_queue(queue)
                    or self._sqs.get_queue_url(QueueName=fifo_queue)["QueueUrl"]
                )
            except ClientError as exc:
                if is_not_found(exc):
                    raise AdapterError(f"aws: no subscription {name!r} (queue {queue})") from exc
                raise
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            )["Attributes"]
            tags = self._sqs.list_queue_tags(QueueUrl=queue_url).get("Tags", {})
            redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
            dlq_name = str(redrive.get("deadLetterTargetArn", "")).rsplit(":", 1)[-1]
            dlq_url = self._sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
            topic = tags.get(TOPIC_TAG)
            if topic is None:
                raise AdapterError(f"aws: queue {queue} has no {TOPIC_TAG} tag; not polybus's")
            bus = mapping.bus_name(self._config.bus_prefix, topic)
            rule = mapping.rule_name(self._config.queue_prefix, name)
            try:
                rule_arn = str(self._events.describe_rule(Name=rule, EventBusName=bus)["Arn"])
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
                rule_arn = ""  # half-provisioned: the queue is there, the rule is not
        subscription = Subscription(
            name=name,
            topic=topic,
            bus=bus,
            rule=rule,
            rule_arn=rule_arn,
            queue_url=queue_url,
            dlq_url=dlq_url,
            max_attempts=int(redrive.get("maxReceiveCount", 1)),
            fifo=queue_url.endswith(".fifo"),
        )
        with self._lock:
            self._subscriptions[name] = subscription
        return subscription

    def backlog(self, name: str) -> BacklogStats:
        """The queue's approximate counts, its oldest age (CloudWatch) and its dead-letter depth.

        The counts are SQS attributes. SQS has no attribute for the oldest
        message's age: it is the CloudWatch metric ApproximateAgeOfOldestMessage
        (one value per minute), read with GetMetricData (monitoring.py).
        A dead-letter queue shared by several subscriptions reports its whole
        depth.
        """
        sub = self.lookup(name)
        counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        with translate_errors(f"read the backlog of {name}"):
            main = self._sqs.get_queue_attributes(
                QueueUrl=sub.queue_url,
                AttributeNames=[*counts, "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            dead = self._sqs.get_queue_attributes(
                QueueUrl=sub.dlq_url, AttributeNames=list(counts)
            )["Attributes"]
        undelivered = int(main.get(counts[0], 0)) + int(
            main.get("ApproximateNumberOfMessagesDelayed", 0)
        )
        in_flight = int(main.get(counts[1], 0))
        return BacklogStats(
            name,
            undelivered=undelivered,
            in_flight=in_flight,
            oldest_age=self.oldest_age(sub) if undelivered + in_flight else None,
            dead_letters=sum(int(dead.get(key, 0)) for key in counts),
        )

    def oldest_age(self, sub: Subscription) -> float | None:
        """The queue's newest ApproximateAgeOfOldestMessage (seconds), or None: see monitoring.py."""
        return self._oldest_age.read(sub.queue_url.rstrip("/").rsplit("/", 1)[-1])

    def forget(self, name: str) -> None:
        """Drop the cached subscription (e.g. after its queue vanished)."""
        with self._lock:
            self._subscriptions.pop(name, None)

    def delete(self, name: str) -> None:
        """Remove the rule, its target and the queues (a shared dead-letter queue stays)."""
        try:
            subscription = self.lookup(name)
        except AdapterError as exc:
            if is_not_found(exc):
                return
            raise
        with translate_errors(f"delete subscription {name}"):
            self._delete_rule(subscription.rule, subscription.bus)
            self._delete_queue(subscription.queue_url)
            own_dlq = mapping.queue_name(
                self._config.queue_prefix, f"{name}-dlq", fifo=subscription.fifo
            )
            if subscription.dlq_url.rstrip("/").rsplit("/", 1)[-1] == own_dlq:
                self._delete_queue(subscription.dlq_url)
        with self._lock:
            self._subscriptions.pop(name, None)
            self._specs.pop(name, None)

    # -- helpers --------------------------------------------------------------

    def _check_previous(self, spec: SubscriptionSpec, rule: str) -> None:
        """Refuse to flip `ordered` in place; move a subscription off its old topic's bus."""
        previous = self._subscriptions.get(spec.name)
        if previous is None:
            try:
                previous = self.lookup(spec.name)
            except AdapterError:
                return
        if previous.fifo != spec.policy.ordered:
            raise ValidationError(
                f"subscription {spec.name!r}",
                [
                    Problem(
                        "policy.ordered",
                        spec.policy.ordered,
                        "an aws subscription cannot switch between a standard and a FIFO queue "
                        "in place: delete it first",
                    )
                ],
            )
        if previous.topic != spec.topic:
            with translate_errors(f"move subscription {spec.name}"):
                self._delete_rule(rule, previous.bus)

    def _find_queue(self, name: str) -> str | None:
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise

    def _delete_rule(self, rule: str, bus: str) -> None:
        for call in (
            lambda: self._events.remove_targets(Rule=rule, EventBusName=bus, Ids=[TARGET_ID]),
            lambda: self._events.delete_rule(Name=rule, EventBusName=bus),
        ):
            try:
                call()
            except ClientError as exc:
                if not is_not_found(exc):
                    raise

    def _delete_queue(self, url: str) -> None:
        try:
            self._sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    def _ensure_queue(
        self,
        name: str,
        attributes: dict[str, str],
        tags: dict[str, str],
        rule_arn: str,
        *,
        merge: bool,
    ) -> tuple[str, str]:
        """Create or update a queue whose policy lets EventBridge send from `rule_arn`.

        With `merge`, rules already allowed stay allowed (a shared dead-letter
        queue). The policy goes in the same SetQueueAttributes call as the
        other attributes: moto (unlike AWS) clears a policy that a call omits.
        """
        try:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            url = self._sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)[
                "QueueUrl"
            ]
        else:
            self._sqs.tag_queue(QueueUrl=url, Tags=tags)
            attributes = {k: v for k, v in attributes.items() if k != "FifoQueue"}  # immutable
        current = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "Policy"]
        ).get("Attributes", {})
        arn = current["QueueArn"]
        sources = {rule_arn}
        if merge:
            sources |= _allowed_sources(current.get("Policy"))
        policy = queue_policy(arn, sorted(sources))
        self._sqs.set_queue_attributes(
            QueueUrl=url, Attributes={**attributes, "Policy": json.dumps(policy)}
        )
        return url, arn


def _allowed_sources(policy_text: str | None) -> set[str]:
    if not policy_text:
        return set()
    try:
        policy: Any = json.loads(policy_text)
    except ValueError:
        return set()
    sources: set[str] = set()
    for statement in policy.get("Statement", []):
        if statement.get("Sid") != POLICY_SID:
            continue
        arns = statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn", [])
        sources.update([arns] if isinstance(arns, str) else arns)
    return sources
