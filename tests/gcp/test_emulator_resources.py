"""IAM policies, snapshots and seek to a snapshot, through the real google-cloud-pubsub client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.iam.v1 import policy_pb2

from tests.gcp.helpers import PubSubClients, publish_all, pull_all


def _topic_and_sub(pubsub: PubSubClients, base: str) -> tuple[str, str]:
    topic, sub = pubsub.topic(base), pubsub.subscription(base)
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    return topic, sub


def test_iam_policy_is_stored_per_resource_with_etag_checks(pubsub: PubSubClients) -> None:
    """Set/Get/TestIamPermissions on a topic and a subscription; a stale etag is ABORTED."""
    topic, sub = _topic_and_sub(pubsub, "iam")
    publisher, subscriber = pubsub.publisher, pubsub.subscriber
    empty = publisher.get_iam_policy(request={"resource": topic})
    assert list(empty.bindings) == [] and empty.etag
    policy = policy_pb2.Policy(etag=empty.etag)
    policy.bindings.add(role="roles/pubsub.publisher", members=["user:ada@example.com"])
    stored = publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    assert stored.etag != empty.etag
    again = publisher.get_iam_policy(request={"resource": topic})
    assert [(b.role, list(b.members)) for b in again.bindings] == [
        ("roles/pubsub.publisher", ["user:ada@example.com"])
    ]
    assert list(subscriber.get_iam_policy(request={"resource": sub}).bindings) == []
    with pytest.raises(exceptions.Aborted):  # read-modify-write with the old etag
        publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    granted = publisher.test_iam_permissions(
        request={"resource": topic, "permissions": ["pubsub.topics.publish"]}
    )
    assert list(granted.permissions) == ["pubsub.topics.publish"]


def test_iam_refuses_bad_members_roles_and_missing_resources(pubsub: PubSubClients) -> None:
    """Malformed members or roles are INVALID_ARGUMENT; an absent resource is NOT_FOUND."""
    topic, _ = _topic_and_sub(pubsub, "iam-bad")
    publisher = pubsub.publisher
    bad_member = policy_pb2.Policy()
    bad_member.bindings.add(role="roles/pubsub.viewer", members=["ada@example.com"])
    with pytest.raises(exceptions.InvalidArgument, match="Invalid member"):
        publisher.set_iam_policy(request={"resource": topic, "policy": bad_member})
    bad_role = policy_pb2.Policy()
    bad_role.bindings.add(role="pubsub.viewer", members=["allUsers"])
    with pytest.raises(exceptions.InvalidArgument, match="not a valid role"):
        publisher.set_iam_policy(request={"resource": topic, "policy": bad_role})
    with pytest.raises(exceptions.NotFound):
        publisher.get_iam_policy(request={"resource": pubsub.topic("absent")})


def test_policy_is_forgotten_when_the_topic_is_deleted(pubsub: PubSubClients) -> None:
    """A recreated topic starts with an empty policy."""
    topic, _ = _topic_and_sub(pubsub, "iam-del")
    policy = policy_pb2.Policy()
    policy.bindings.add(role="roles/pubsub.publisher", members=["allUsers"])
    pubsub.publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    pubsub.publisher.delete_topic(topic=topic)
    pubsub.publisher.create_topic(name=topic)
    assert list(pubsub.publisher.get_iam_policy(request={"resource": topic}).bindings) == []


def test_seek_to_snapshot_redelivers_what_was_unacked_and_published_after(
    pubsub: PubSubClients,
) -> None:
    """A snapshot keeps unacked messages and later ones; seeking back redelivers exactly those."""
    topic, sub = _topic_and_sub(pubsub, "snap")
    publisher, subscriber = pubsub.publisher, pubsub.subscriber
    publish_all(publisher, topic, [b"acked-before"])
    [first] = pull_all(subscriber, sub, 1)
    subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])
    publish_all(publisher, topic, [b"unacked-at-snapshot"])
    snapshot_name = f"projects/{pubsub.project}/snapshots/snap-{pubsub.suffix}"
    snapshot = subscriber.create_snapshot(name=snapshot_name, subscription=sub)
    assert snapshot.topic == topic and snapshot.expire_time
    publish_all(publisher, topic, [b"after-snapshot"])
    drained = pull_all(subscriber, sub, 2)
    subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in drained])
    assert sorted(m.message.data for m in drained) == [b"after-snapshot", b"unacked-at-snapshot"]

    subscriber.seek(request={"subscription": sub, "snapshot": snapshot_name})
    again = pull_all(subscriber, sub, 3, timeout=2.0)
    assert sorted(m.message.data for m in again) == [b"after-snapshot", b"unacked-at-snapshot"]


def test_snapshot_lifecycle_and_status_codes(pubsub: PubSubClients) -> None:
    """Get, list, update labels, delete; duplicates, absentees and foreign topics are refused."""
    _, sub = _topic_and_sub(pubsub, "snap-admin")
    _, other_sub = _topic_and_sub(pubsub, "snap-other")
    subscriber = pubsub.subscriber
    name = f"projects/{pubsub.project}/snapshots/admin-{pubsub.suffix}"
    subscriber.create_snapshot(request={"name": name, "subscription": sub, "labels": {"a": "1"}})
    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_snapshot(name=name, subscription=sub)
    assert subscriber.get_snapshot(snapshot=name).labels == {"a": "1"}
    listed = [s.name for s in subscriber.list_snapshots(project=f"projects/{pubsub.project}")]
    assert name in listed
    updated = subscriber.update_snapshot(
        request={"snapshot": {"name": name, "labels": {"b": "2"}}, "update_mask": {"paths": ["labels"]}}
    )
    assert updated.labels == {"b": "2"}
    with pytest.raises(exceptions.FailedPrecondition, match="belongs to topic"):
        subscriber.seek(request={"subscription": other_sub, "snapshot": name})
    subscriber.delete_snapshot(snapshot=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_snapshot(snapshot=name)
    with pytest.raises(exceptions.NotFound):
        subscriber.seek(request={"subscription": sub, "snapshot": name})
