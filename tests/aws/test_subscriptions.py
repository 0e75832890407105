"""Subscriptions on AWS: bus, rule, SQS queue and DLQ provisioning, delivery and teardown."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.adapters.aws.delivery import SqsDelivery
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import ValidationError
from polybus.core.events import EventFactory, attributes_of
from polybus.core.filters.dialects import All, Exact, Sql, compile_filter
from tests.aws.helpers import AwsClients

FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


def _factory() -> EventFactory:
    counter = iter(range(1, 1_000_000))
    return EventFactory(id_factory=lambda: f"evt-{next(counter)}")


def _wait_visible(seconds: float) -> None:
    """Let an SQS visibility timeout run out (moto checks visibility once a second)."""
    time.sleep(seconds)


def test_provision_creates_bus_rule_queues_target_and_policies(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """One bus (with archive) per topic; per subscription a rule, queue, DLQ, target and queue policies."""
    adapter = aws_adapter_factory()
    topic, sub = unique("orders"), unique("billing")
    policy = DeliveryPolicy(max_delivery_attempts=3, ack_deadline=12.5, retry=FAST)
    assert adapter.provision(SubscriptionSpec(sub, topic, None, policy)) is None
    bus = f"polybus-{topic}"
    assert aws_clients.events.describe_event_bus(Name=bus)["Name"] == bus
    archive = aws_clients.events.describe_archive(ArchiveName=f"{bus}-archive")
    assert archive["RetentionDays"] == 7
    rule = aws_clients.events.describe_rule(Name=f"polybus-{sub}", EventBusName=bus)
    assert json.loads(rule["EventPattern"]) == {"source": [{"prefix": ""}]}
    assert rule["State"] == "ENABLED"
    queue = aws_clients.queue_attributes(f"polybus-{sub}")
    dlq = aws_clients.queue_attributes(f"polybus-{sub}-dlq")
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 3,
    }
    assert queue["VisibilityTimeout"] == "13"  # ack_deadline rounded up to whole seconds
    assert aws_clients.queue_policy_sources(f"polybus-{sub}") == [rule["Arn"]]
    assert aws_clients.queue_policy_sources(f"polybus-{sub}-dlq") == [rule["Arn"]]
    [target] = aws_clients.events.list_targets_by_rule(Rule=f"polybus-{sub}", EventBusName=bus)[
        "Targets"
    ]
    assert target["Arn"] == queue["QueueArn"]
    # moto stores but never acts on these; on AWS they send undeliverable events to the DLQ.
    assert target["DeadLetterConfig"] == {"Arn": dlq["QueueArn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}


def test_reprovisioning_updates_pattern_and_redrive(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """Provisioning again with another filter and policy updates the rule and queue in place."""
    adapter = aws_adapter_factory()
    topic, sub = unique("orders"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    flt = Exact("type", "com.shop.paid")
    residual = adapter.provision(
        SubscriptionSpec(sub, topic, flt, DeliveryPolicy(max_delivery_attempts=7))
    )
    assert residual is None
    rule = aws_clients.events.describe_rule(Name=f"polybus-{sub}", EventBusName=f"polybus-{topic}")
    assert json.loads(rule["EventPattern"]) != {"source": [{"prefix": ""}]}
    redrive = json.loads(aws_clients.queue_attributes(f"polybus-{sub}")["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 7
    assert aws_clients.queue_names(f"polybus-{sub}") == [f"polybus-{sub}", f"polybus-{sub}-dlq"]


def test_native_filter_keeps_non_matching_events_out_of_the_queue(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """The rule's pattern drops non-matching events before SQS; only the residual is left to the client."""
    adapter = aws_adapter_factory()
    topic, sub = unique("shop"), unique("sub")
    # UPPER(...) has no EventBridge equivalent: it stays in the residual.
    flt = All((Exact("type", "com.shop.paid"), Sql("UPPER(subject) = 'EU-1'")))
    residual = adapter.provision(SubscriptionSpec(sub, topic, flt))
    assert residual is not None
    factory = _factory()
    paid_eu = factory.new("com.shop.paid", "/s", subject="eu-1")
    paid_us = factory.new("com.shop.paid", "/s", subject="us-1")
    other = factory.new("com.shop.placed", "/s", subject="eu-2")
    adapter.publish(topic, [paid_eu, paid_us, other])
    deliveries = adapter.receive(sub, 10, 2.0)
    assert sorted(d.event.get_id() for d in deliveries) == sorted(
        [paid_eu.get_id(), paid_us.get_id()]
    )
    accepts = compile_filter(residual)
    assert [accepts(attributes_of(d.event)) for d in deliveries] == [
        d.event.get_subject() == "eu-1" for d in deliveries
    ]
    for d in deliveries:
        d.ack()


def test_unsettled_deliveries_are_dead_lettered_by_the_redrive_policy(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """A delivery never settled reappears after the ack deadline; after max attempts SQS moves it to the DLQ."""
    adapter = aws_adapter_factory()
    topic, sub = unique("crash"), unique("sub")
    policy = DeliveryPolicy(max_delivery_attempts=2, ack_deadline=1, retry=FAST)
    adapter.provision(SubscriptionSpec(sub, topic, None, policy))
    event = _factory().new("com.example.crash", "/c")
    adapter.publish(topic, [event])
    attempts = []
    for _ in range(2):
        [delivery] = adapter.receive(sub, 1, 3.0)
        attempts.append(delivery.attempt)
        _wait_visible(1.2)  # the consumer "crashed": no ack, no nack
    assert attempts == [1, 2]
    assert adapter.receive(sub, 1, 1.5) == []
    [dead] = adapter.receive_dead_letters(sub, 1, 2.0)
    assert dead.event.get_id() == event.get_id()
    assert isinstance(dead, SqsDelivery)
    assert dead.reason is not None and "redrive" in dead.reason
    dead.ack()


def test_dead_letter_keeps_the_reason(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """dead_letter(reason) moves the event to the DLQ with the reason readable on the dead letter."""
    adapter = aws_adapter_factory()
    topic, sub = unique("poison"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [_factory().new("com.example.poison", "/p", {"bad": True})])
    [delivery] = adapter.receive(sub, 1, 2.0)
    delivery.dead_letter("cannot parse: missing field 'sku'")
    delivery.ack()  # settling twice is a no-op
    [dead] = adapter.receive_dead_letters(sub, 1, 2.0)
    assert isinstance(dead, SqsDelivery)
    assert dead.reason == "cannot parse: missing field 'sku'"
    assert dead.event.get_data() == {"bad": True}
    dead.ack()
    assert adapter.receive_dead_letters(sub, 1, 0.0) == []


def test_undecodable_message_goes_to_the_dlq_with_a_reason(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """A queue message that is not an event is never handed out; it lands in the DLQ with the reason."""
    adapter = aws_adapter_factory()
    topic, sub = unique("junk"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    aws_clients.sqs.send_message(QueueUrl=aws_clients.queue_url(f"polybus-{sub}"), MessageBody="hi")
    assert adapter.receive(sub, 1, 0.5) == []
    [raw] = aws_clients.sqs.receive_message(
        QueueUrl=aws_clients.queue_url(f"polybus-{sub}-dlq"), MessageAttributeNames=["All"]
    )["Messages"]
    assert raw["Body"] == "hi"
    assert raw["MessageAttributes"]["polybus-reason"]["StringValue"].startswith("undecodable")


def test_a_fresh_adapter_finds_an_existing_subscription(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """Another adapter instance with the same configuration receives, nacks and dead-letters by name alone."""
    topic, sub = unique("shared"), unique("sub")
    aws_adapter_factory().provision(
        SubscriptionSpec(sub, topic, None, DeliveryPolicy(max_delivery_attempts=1, retry=FAST))
    )
    other = aws_adapter_factory()
    event = _factory().new("com.example.x", "/x")
    other.publish(topic, [event])
    [delivery] = other.receive(sub, 1, 2.0)
    delivery.nack(0.0)  # the only attempt: dead-lettered
    [dead] = other.receive_dead_letters(sub, 1, 2.0)
    assert dead.event.get_id() == event.get_id()
    dead.ack()


def test_delete_removes_rule_target_and_queues_but_keeps_the_bus(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """Teardown removes the subscription's rule, target, queue and own DLQ; a shared DLQ and the bus stay."""
    adapter = aws_adapter_factory()
    topic, own, shared = unique("t"), unique("own"), unique("shared")
    shared_policy = DeliveryPolicy(dead_letter=unique("common-dlq"))
    adapter.provision(SubscriptionSpec(own, topic))
    adapter.provision(SubscriptionSpec(shared, topic, None, shared_policy))
    bus = f"polybus-{topic}"
    assert aws_clients.rule_names(bus) == sorted([f"polybus-{own}", f"polybus-{shared}"])
    adapter.delete_subscription(own)
    adapter.delete_subscription(shared)
    adapter.delete_subscription(shared)  # idempotent
    assert aws_clients.rule_names(bus) == []
    assert aws_clients.queue_names("polybus-") == [f"polybus-{unique('common-dlq')}"]
    assert aws_clients.events.describe_event_bus(Name=bus)["Name"] == bus


def test_shared_dlq_policy_admits_every_rule_using_it(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """Two subscriptions sharing one dead-letter queue both appear in its queue policy."""
    adapter = aws_adapter_factory()
    topic, common = unique("t"), unique("common-dlq")
    policy = DeliveryPolicy(dead_letter=common)
    adapter.provision(SubscriptionSpec(unique("a"), topic, None, policy))
    adapter.provision(SubscriptionSpec(unique("b"), topic, None, policy))
    sources = aws_clients.queue_policy_sources(f"polybus-{common}")
    assert [s.rsplit("/", 1)[-1] for s in sources] == [
        f"polybus-{unique('a')}",
        f"polybus-{unique('b')}",
    ]


def test_moving_a_subscription_to_another_topic_leaves_the_old_one(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """Re-provisioning a subscription on a new topic removes its rule from the old topic's bus."""
    adapter = aws_adapter_factory()
    old, new, sub = unique("old"), unique("new"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, old))
    aws_adapter_factory().provision(SubscriptionSpec(sub, new))
    assert aws_clients.rule_names(f"polybus-{old}") == []
    factory = _factory()
    adapter.publish(old, [factory.new("com.example.old", "/o")])
    adapter.publish(new, [factory.new("com.example.new", "/n")])
    [delivery] = aws_adapter_factory().receive(sub, 10, 2.0)
    assert delivery.event.get_type() == "com.example.new"
    delivery.ack()


def test_close_makes_unsettled_deliveries_visible_again(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """Closing an adapter releases what it received but did not settle, without waiting for the deadline."""
    first = aws_adapter_factory()
    topic, sub = unique("t"), unique("sub")
    first.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(ack_deadline=300)))
    first.publish(topic, [_factory().new("com.example.x", "/x")])
    [held] = first.receive(sub, 1, 2.0)
    first.close()
    [again] = aws_adapter_factory().receive(sub, 1, 2.0)
    assert again.event.get_id() == held.event.get_id()
    assert again.attempt == 2
    again.ack()


def test_ordered_subscription_uses_fifo_queues_and_keeps_order(
    aws_adapter_factory: Callable[..., AwsAdapter],
    aws_clients: AwsClients,
    unique: Callable[[str], str],
) -> None:
    """ordered=True provisions FIFO queues (one message group); events arrive in publish order."""
    adapter = aws_adapter_factory()
    topic, sub = unique("seq"), unique("sub")
    policy = DeliveryPolicy(ordered=True, max_delivery_attempts=2, retry=FAST)
    adapter.provision(SubscriptionSpec(sub, topic, None, policy))
    queue = aws_clients.queue_attributes(f"polybus-{sub}.fifo")
    assert queue["FifoQueue"] == "true" and queue["ContentBasedDeduplication"] == "true"
    assert aws_clients.queue_attributes(f"polybus-{sub}-dlq.fifo")["FifoQueue"] == "true"
    [target] = aws_clients.events.list_targets_by_rule(
        Rule=f"polybus-{sub}", EventBusName=f"polybus-{topic}"
    )["Targets"]
    assert target["SqsParameters"] == {"MessageGroupId": "polybus"}
    factory = _factory()
    events = [
        factory.new("com.example.seq", "/s", {"n": i}, extensions={"partitionkey": "k1"})
        for i in range(6)
    ]
    adapter.publish(topic, events)
    [first] = adapter.receive(sub, 1, 2.0)
    assert first.event.get_data() == {"n": 0}
    first.nack(0.0)
    seen = []
    while batch := adapter.receive(sub, 10, 1.0):
        for delivery in batch:
            seen.append(delivery.event.get_data()["n"])
            delivery.ack()
    assert seen == [0, 1, 2, 3, 4, 5]


def test_ordered_subscription_dead_letters_into_its_fifo_dlq(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """dead_letter on a FIFO subscription lands in the FIFO dead-letter queue with its reason."""
    adapter = aws_adapter_factory()
    topic, sub = unique("seq"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(ordered=True)))
    event = _factory().new("com.example.seq", "/s")
    adapter.publish(topic, [event])
    [delivery] = adapter.receive(sub, 1, 2.0)
    delivery.dead_letter("bad sequence")
    [dead] = adapter.receive_dead_letters(sub, 1, 2.0)
    assert isinstance(dead, SqsDelivery)
    assert (dead.event.get_id(), dead.reason) == (event.get_id(), "bad sequence")
    dead.ack()


def test_switching_ordered_in_place_is_refused(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """A standard-queue subscription cannot become ordered (FIFO) in place: ValidationError, nothing lost."""
    adapter = aws_adapter_factory()
    topic, sub = unique("t"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    with pytest.raises(ValidationError) as caught:
        adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(ordered=True)))
    assert caught.value.problems[0].field == "policy.ordered"
    adapter.delete_subscription(sub)
    adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(ordered=True)))


def test_receive_after_another_instance_recreated_the_subscription(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """A cached queue that was deleted and re-created elsewhere is looked up again, not an error."""
    consumer, admin = aws_adapter_factory(), aws_adapter_factory()
    topic, sub = unique("t"), unique("sub")
    consumer.provision(SubscriptionSpec(sub, topic))
    assert consumer.receive(sub, 1, 0.0) == []
    admin.delete_subscription(sub)
    admin.provision(SubscriptionSpec(sub, topic))
    admin.publish(topic, [_factory().new("com.example.x", "/x")])
    [delivery] = consumer.receive(sub, 1, 2.0)
    delivery.ack()
