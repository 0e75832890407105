"""Pull, ack, nack, lease expiry, retry backoff, dead-lettering and seek, via the real client."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from tests.gcp.helpers import PubSubClients, publish_all, pull_all


def _setup(pubsub: PubSubClients, **settings: object) -> tuple[str, str]:
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(request={"name": sub, "topic": topic, **settings})
    return topic, sub


def test_pull_ack_delivers_each_message_once(pubsub: PubSubClients) -> None:
    """Pulled and acked messages carry data, attributes, ids and publish times, and never return."""
    topic, sub = _setup(pubsub)
    ids = publish_all(pubsub.publisher, topic, [b"a", b"b", b"c"], kind="x")
    received = pull_all(pubsub.subscriber, sub, expected=3)
    assert sorted(m.message.message_id for m in received) == sorted(ids)
    assert {m.message.attributes["kind"] for m in received} == {"x"}
    assert all(m.message.publish_time.timestamp() > 0 for m in received)
    assert all(m.delivery_attempt == 0 for m in received)  # no dead-letter policy
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in received])
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []


def test_leased_message_is_not_pulled_twice(pubsub: PubSubClients) -> None:
    """While a message's lease runs, another Pull does not receive it."""
    topic, sub = _setup(pubsub)
    publish_all(pubsub.publisher, topic, [b"only"])
    [first] = pull_all(pubsub.subscriber, sub, expected=1)
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])


def test_nack_redelivers_with_a_new_ack_id(pubsub: PubSubClients) -> None:
    """ModifyAckDeadline 0 redelivers at once; the old ack id no longer settles the message."""
    topic, sub = _setup(pubsub)
    publish_all(pubsub.publisher, topic, [b"again"])
    [first] = pull_all(pubsub.subscriber, sub, expected=1)
    pubsub.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )
    [second] = pull_all(pubsub.subscriber, sub, expected=1)
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])  # stale: ignored
    pubsub.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[second.ack_id], ack_deadline_seconds=0
    )
    [third] = pull_all(pubsub.subscriber, sub, expected=1)
    assert third.message.message_id == first.message.message_id
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[third.ack_id])


def test_expired_lease_redelivers(pubsub: PubSubClients) -> None:
    """A message whose lease (shortened to 1 s by a modack) runs out is delivered again."""
    topic, sub = _setup(pubsub)
    publish_all(pubsub.publisher, topic, [b"slow"])
    [first] = pull_all(pubsub.subscriber, sub, expected=1)
    pubsub.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    [again] = pull_all(pubsub.subscriber, sub, expected=1, timeout=10)
    assert again.message.message_id == first.message.message_id
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[again.ack_id])


def test_retry_policy_delays_redelivery(pubsub: PubSubClients) -> None:
    """With a retry policy, a nacked message is held back for the backoff before coming back."""
    backoff = {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 1}}
    topic, sub = _setup(pubsub, retry_policy=backoff)
    publish_all(pubsub.publisher, topic, [b"later"])
    [first] = pull_all(pubsub.subscriber, sub, expected=1)
    pubsub.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )
    immediate = pubsub.subscriber.pull(
        request={"subscription": sub, "max_messages": 1, "return_immediately": True}
    )
    assert list(immediate.received_messages) == []
    [again] = pull_all(pubsub.subscriber, sub, expected=1, timeout=10)
    assert again.message.message_id == first.message.message_id
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[again.ack_id])


def test_dead_letter_policy_counts_attempts_and_forwards(pubsub: PubSubClients) -> None:
    """delivery_attempt counts 1..5; after the 5th nack the message moves to the dead-letter topic."""
    dead_topic, dead_sub = pubsub.topic("dlt"), pubsub.subscription("dlt")
    pubsub.publisher.create_topic(name=dead_topic)
    pubsub.subscriber.create_subscription(name=dead_sub, topic=dead_topic)
    policy = {"dead_letter_topic": dead_topic, "max_delivery_attempts": 5}
    topic, sub = _setup(pubsub, dead_letter_policy=policy)
    [message_id] = publish_all(pubsub.publisher, topic, [b"poison"], origin="test")
    attempts = []
    for _ in range(5):
        [received] = pull_all(pubsub.subscriber, sub, expected=1)
        attempts.append(received.delivery_attempt)
        pubsub.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[received.ack_id], ack_deadline_seconds=0
        )
    assert attempts == [1, 2, 3, 4, 5]
    [dead] = pull_all(pubsub.subscriber, dead_sub, expected=1)
    attributes = dict(dead.message.attributes)
    assert dead.message.data == b"poison"
    assert attributes["origin"] == "test"
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == sub.rsplit("/", 1)[1]
    assert attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] == pubsub.project
    assert dead.message.message_id != message_id
    pubsub.subscriber.acknowledge(subscription=dead_sub, ack_ids=[dead.ack_id])
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []


def _at(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def test_seek_to_a_time_replays_retained_acked_messages(pubsub: PubSubClients) -> None:
    """With retain_acked_messages, seeking to before a publish redelivers acked messages; after it, none."""
    topic, sub = _setup(pubsub, retain_acked_messages=True)
    before = datetime.now(UTC) - timedelta(seconds=1)
    publish_all(pubsub.publisher, topic, [b"one", b"two"])
    received = pull_all(pubsub.subscriber, sub, expected=2)
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in received])
    pubsub.subscriber.seek(request={"subscription": sub, "time": _at(before)})
    replayed = pull_all(pubsub.subscriber, sub, expected=2)
    assert sorted(m.message.data for m in replayed) == [b"one", b"two"]
    pubsub.subscriber.seek(request={"subscription": sub, "time": _at(datetime.now(UTC))})
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []


def test_seek_without_retention_of_acked_replays_only_unacked(pubsub: PubSubClients) -> None:
    """Without retain_acked_messages, a seek back brings back only what was never acked."""
    topic, sub = _setup(pubsub)
    before = datetime.now(UTC) - timedelta(seconds=1)
    publish_all(pubsub.publisher, topic, [b"acked", b"open"])
    received = pull_all(pubsub.subscriber, sub, expected=2)
    acked = [m for m in received if m.message.data == b"acked"]
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in acked])
    time.sleep(0.05)
    pubsub.subscriber.seek(request={"subscription": sub, "time": _at(before)})
    replayed = pull_all(pubsub.subscriber, sub, expected=2, timeout=1.0)
    assert [m.message.data for m in replayed] == [b"open"]
