"""The plan of what `provisioning.Provisioner` creates, for `polybus provision` (no SDK import).

Per topic: the event bus and (config `archive`) its archive. Per
subscription: the dead-letter queue, the queue (redrive after
max_delivery_attempts receives, visibility = ack_deadline), the rule with
the compiled event pattern, its SQS target (retry policy, dead-letter
config, FIFO message group) and the queue policies that let EventBridge
send from the rule. Names, attributes and patterns come from the same
functions and constants the provisioner uses; Terraform and CloudFormation
templates describe the same resources.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from polybus.adapters.aws import mapping
from polybus.adapters.aws.config import AwsConfig, parse_config
from polybus.adapters.aws.filters import event_pattern
from polybus.core.contract import SubscriptionSpec
from polybus.core.filters.dialects import Filter
from polybus.core.provisioning_plan import (
    Block,
    JsonText,
    ListedSubscription,
    ProvisioningPlan,
    Ref,
    Resource,
    Template,
    filter_text,
    resource_key,
    topics_of,
)

# Shared with provisioning.py (which imports botocore), so plan and provisioner agree.
TARGET_ID = "polybus-sqs"
# EventBridge gives a FIFO target one static message group: one group, total order.
MESSAGE_GROUP = "polybus"
TOPIC_TAG = "polybus-topic"
SUBSCRIPTION_TAG = "polybus-subscription"
POLICY_SID = "polybus-eventbridge"
RETENTION_SECONDS = "1209600"  # 14 days, the SQS maximum, for both queues
MAX_VISIBILITY = 43200  # 12 hours, the SQS maximum
# EventBridge's documented defaults, set explicitly so the target says what it does.
TARGET_RETRY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """What `Provisioner.provision` creates for `specs` (and each published topic's bus)."""
    config = parse_config(section)
    resources: dict[str, Resource] = {}
    buses: dict[str, str] = {}
    for topic in topics_of(specs, publications):
        buses[topic] = _plan_bus(resources, config, topic)
    residuals: dict[str, str] = {}
    dlq_sources: dict[str, list[Ref]] = {}
    for spec in specs:
        residual = _plan_subscription(resources, config, spec, buses[spec.topic], dlq_sources)
        if residual is not None:
            residuals[spec.name] = filter_text(residual)
    for dlq, rules in dlq_sources.items():
        _plan_policy(resources, dlq, rules)
    notes = () if not residuals else ("residual filters run in the consumer: see residual_filters",)
    return ProvisioningPlan("aws", tuple(resources.values()), residuals, notes)


def _add(resources: dict[str, Resource], resource: Resource) -> str:
    resources.setdefault(resource.key, resource)
    return resource.key


def _tags(spec: SubscriptionSpec) -> dict[str, str]:
    return {TOPIC_TAG: spec.topic[:256], SUBSCRIPTION_TAG: spec.name[:256]}


def _plan_bus(resources: dict[str, Resource], config: AwsConfig, topic: str) -> str:
    name = mapping.bus_name(config.bus_prefix, topic)
    key = _add(
        resources,
        Resource(
            resource_key("bus", name),
            "event-bus",
            name,
            f"topic {topic}",
            {"Name": name},
            {
                "terraform": Template("aws_cloudwatch_event_bus", {"name": name}),
                "cloudformation": Template("AWS::Events::EventBus", {"Name": name}),
            },
        ),
    )
    if config.archive:
        archive = mapping.archive_name(name)
        description = f"polybus: every event on {name}, for replay"
        days = config.archive_retention_days
        _add(
            resources,
            Resource(
                resource_key("archive", archive),
                "archive",
                archive,
                f"topic {topic} (replay)",
                {"ArchiveName": archive, "EventSourceArn": name, "RetentionDays": days},
                {
                    "terraform": Template(
                        "aws_cloudwatch_event_archive",
                        {
                            "name": archive,
                            "event_source_arn": Ref(key, "arn"),
                            "retention_days": days,
                            "description": description,
                        },
                    ),
                    "cloudformation": Template(
                        "AWS::Events::Archive",
                        {
                            "ArchiveName": archive,
                            "SourceArn": Ref(key, "Arn"),
                            "RetentionDays": days,
                            "Description": description,
                        },
                    ),
                },
            ),
        )
    return key


def _plan_queue(
    resources: dict[str, Resource],
    name: str,
    purpose: str,
    attributes: dict[str, Any],
    tags: dict[str, str],
    redrive: tuple[str, int] | None = None,
) -> str:
    fifo = name.endswith(".fifo")
    tf: dict[str, Any] = {"name": name, "message_retention_seconds": int(RETENTION_SECONDS)}
    cfn: dict[str, Any] = {"QueueName": name, "MessageRetentionPeriod": int(RETENTION_SECONDS)}
    if "VisibilityTimeout" in attributes:
        tf["visibility_timeout_seconds"] = cfn["VisibilityTimeout"] = attributes[
            "VisibilityTimeout"
        ]
    if fifo:
        tf["fifo_queue"] = tf["content_based_deduplication"] = True
        cfn["FifoQueue"] = cfn["ContentBasedDeduplication"] = True
    if redrive is not None:
        dlq, count = redrive
        tf["redrive_policy"] = JsonText(
            {"deadLetterTargetArn": Ref(dlq, "arn"), "maxReceiveCount": count}
        )
        cfn["RedrivePolicy"] = {"deadLetterTargetArn": Ref(dlq, "Arn"), "maxReceiveCount": count}
    tf["tags"] = tags
    cfn["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return _add(
        resources,
        Resource(
            resource_key("queue", name),
            "queue" if redrive is not None else "dead-letter-queue",
            name,
            purpose,
            {"QueueName": name, "Attributes": attributes, "Tags": tags},
            {
                "terraform": Template("aws_sqs_queue", tf),
                "cloudformation": Template("AWS::SQS::Queue", cfn),
            },
        ),
    )


def _plan_subscription(
    resources: dict[str, Resource],
    config: AwsConfig,
    spec: SubscriptionSpec,
    bus: str,
    dlq_sources: dict[str, list[Ref]],
) -> Filter | None:
    pattern, residual = event_pattern(spec.filter)
    fifo = spec.policy.ordered
    prefix = config.queue_prefix
    purpose = f"subscription {spec.name}"
    dlq_name = mapping.queue_name(prefix, spec.policy.dead_letter_name(spec.name), fifo=fifo)
    dlq = _plan_queue(resources, dlq_name, f"{purpose} (dead letters)", {}, _tags(spec))
    visibility = min(MAX_VISIBILITY, math.ceil(spec.policy.ack_deadline))
    attempts = spec.policy.max_delivery_attempts
    queue_name = mapping.queue_name(prefix, spec.name, fifo=fifo)
    queue = _plan_queue(
        resources,
        queue_name,
        purpose,
        {"VisibilityTimeout": visibility, "maxReceiveCount": attempts},
        _tags(spec),
        (dlq, attempts),
    )
    rule_name = mapping.rule_name(prefix, spec.name)
    rule_key = resource_key("rule", rule_name)
    target_tf: dict[str, Any] = {
        "rule": Ref(rule_key, "name"),
        "event_bus_name": Ref(bus, "name"),
        "target_id": TARGET_ID,
        "arn": Ref(queue, "arn"),
        "retry_policy": Block(
            {
                "maximum_retry_attempts": TARGET_RETRY["MaximumRetryAttempts"],
                "maximum_event_age_in_seconds": TARGET_RETRY["MaximumEventAgeInSeconds"],
            }
        ),
        "dead_letter_config": Block({"arn": Ref(dlq, "arn")}),
    }
    target_cfn: dict[str, Any] = {
        "Id": TARGET_ID,
        "Arn": Ref(queue, "Arn"),
        "RetryPolicy": TARGET_RETRY,
        "DeadLetterConfig": {"Arn": Ref(dlq, "Arn")},
    }
    if fifo:
        target_tf["sqs_target"] = Block({"message_group_id": MESSAGE_GROUP})
        target_cfn["SqsParameters"] = {"MessageGroupId": MESSAGE_GROUP}
    description = f"polybus subscription {spec.name}"[:512]
    _add(
        resources,
        Resource(
            rule_key,
            "rule",
            rule_name,
            purpose,
            {"Name": rule_name, "EventBusName": resources[bus].name, "EventPattern": pattern},
            {
                "terraform": Template(
                    "aws_cloudwatch_event_rule",
                    {
                        "name": rule_name,
                        "event_bus_name": Ref(bus, "name"),
                        "event_pattern": JsonText(json.loads(pattern)),
                        "state": "ENABLED",
                        "description": description,
                    },
                ),
                "cloudformation": Template(
                    "AWS::Events::Rule",
                    {
                        "Name": rule_name,
                        "EventBusName": Ref(bus),
                        "EventPattern": json.loads(pattern),
                        "State": "ENABLED",
                        "Description": description,
                        "Targets": [target_cfn],
                    },
                ),
            },
        ),
    )
    _add(
        resources,
        Resource(
            resource_key("target", rule_name),
            "target",
            TARGET_ID,
            purpose,
            {"Rule": rule_name, "Id": TARGET_ID, "Arn": queue_name},
            {
                "terraform": Template("aws_cloudwatch_event_target", target_tf),
                "cloudformation": Template("", {}),  # inside the rule's Targets
            },
        ),
    )
    _plan_policy(resources, queue, [Ref(rule_key, "arn")])
    dlq_sources.setdefault(dlq, []).append(Ref(rule_key, "arn"))
    return residual


def queue_policy(arn: Any, sources: list[Any]) -> dict[str, Any]:
    """The SQS policy letting EventBridge rules `sources` send to the queue `arn` (plan and provisioner)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": POLICY_SID,
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": sources}},
            }
        ],
    }


def _plan_policy(resources: dict[str, Resource], queue: str, rules: list[Ref]) -> None:
    """The queue policy letting EventBridge send from `rules` (Terraform attribute names)."""
    name = resources[queue].name
    cfn_rules = [Ref(r.key, "Arn") for r in rules]
    _add(
        resources,
        Resource(
            resource_key("policy", name),
            "queue-policy",
            name,
            resources[queue].purpose,
            {"QueueName": name, "AllowEventBridgeRules": [resources[r.key].name for r in rules]},
            {
                "terraform": Template(
                    "aws_sqs_queue_policy",
                    {
                        "queue_url": Ref(queue, "url"),
                        "policy": JsonText(queue_policy(Ref(queue, "arn"), list(rules))),
                    },
                ),
                "cloudformation": Template(
                    "AWS::SQS::QueuePolicy",
                    {
                        "Queues": [Ref(queue)],
                        "PolicyDocument": queue_policy(Ref(queue, "Arn"), cfn_rules),
                    },
                ),
            },
        ),
    )


def list_subscriptions(adapter: Any) -> list[ListedSubscription]:
    """The subscriptions polybus made with this configuration: its queues, found by their tags."""
    config: AwsConfig = adapter.config
    sqs = adapter._clients.sqs  # the adapter's own client (same package)
    urls: list[str] = []
    request: dict[str, Any] = {"QueueNamePrefix": config.queue_prefix, "MaxResults": 1000}
    while True:
        answer = sqs.list_queues(**request)
        urls += answer.get("QueueUrls", [])
        if not answer.get("NextToken"):
            break
        request["NextToken"] = answer["NextToken"]
    found = []
    for url in sorted(urls):
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        name, topic = tags.get(SUBSCRIPTION_TAG), tags.get(TOPIC_TAG)
        queue = url.rsplit("/", 1)[-1]
        fifo = queue.endswith(".fifo")
        if (
            name is None
            or topic is None
            or queue != mapping.queue_name(config.queue_prefix, name, fifo=fifo)
        ):
            continue  # a dead-letter queue, or a queue polybus did not make
        rule = mapping.rule_name(config.queue_prefix, name)
        bus = mapping.bus_name(config.bus_prefix, topic)
        found.append(ListedSubscription(name, topic, (f"rule {bus}/{rule}", f"queue {queue}")))
    return found
