"""Topic and subscription administration through the real client, with Pub/Sub's status codes."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.protobuf import field_mask_pb2

from polybus.adapters.gcp.emulator import GcpEmulator
from polybus.adapters.gcp.plugin import make_adapter, polybus_register_adapters
from polybus.core.contract import SubscriptionSpec
from polybus.core.events import new_event
from polybus.core.hookspecs import AdapterInfo
from tests.contract.helpers import receive_n
from tests.gcp.helpers import PubSubClients, publish_all


def test_registered_emulator_reports_how_to_reach_it_and_stops() -> None:
    """The plugin's emulator takes a free port and its settings() and environment() reach it."""
    registered: list[AdapterInfo] = []
    polybus_register_adapters(registered.append)
    [info] = registered
    assert info.emulator is not None and info.emulator.default_port == 8085
    emulator = info.emulator.launch(port=0)
    try:
        host, port = emulator.endpoint.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert emulator.environment() == {"PUBSUB_EMULATOR_HOST": emulator.endpoint}
        assert emulator.settings() == {
            "project": "polybus-local",
            "emulator_host": emulator.endpoint,
        }
        adapter = make_adapter(emulator.settings())
        try:
            adapter.provision(SubscriptionSpec("emu-sub", "emu-topic"))
            adapter.publish("emu-topic", [new_event("com.x", "/s", {"n": 1})])
            [delivery] = receive_n(adapter, "emu-sub", 1)
            delivery.ack()
        finally:
            adapter.close()
    finally:
        emulator.stop()
    emulator.stop()  # idempotent


def test_topic_lifecycle_and_status_codes(pubsub: PubSubClients) -> None:
    """Create, get, list, delete a topic; duplicates, absentees, bad names get the right codes."""
    publisher = pubsub.publisher
    topic = pubsub.topic("orders")
    assert publisher.create_topic(name=topic).name == topic
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    assert publisher.get_topic(topic=topic).name == topic
    names = [t.name for t in publisher.list_topics(project=f"projects/{pubsub.project}")]
    assert topic in names
    publisher.delete_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        publisher.delete_topic(topic=topic)
    for bad in ("ab", "goog-topic", "9lives", "has/slash"):
        with pytest.raises(exceptions.InvalidArgument):
            publisher.create_topic(name=f"projects/{pubsub.project}/topics/{bad}")


def test_list_topics_pages(pubsub: PubSubClients) -> None:
    """ListTopics honours page_size and hands out page tokens until every topic was listed."""
    made = {pubsub.topic(f"page{i}") for i in range(5)}
    for name in made:
        pubsub.publisher.create_topic(name=name)
    pager = pubsub.publisher.list_topics(
        request={"project": f"projects/{pubsub.project}", "page_size": 2}
    )
    pages = list(pager.pages)
    listed = {t.name for page in pages for t in page.topics}
    assert made <= listed
    assert all(len(page.topics) <= 2 for page in pages)


def test_publish_errors(pubsub: PubSubClients) -> None:
    """Publishing to a missing topic is NOT_FOUND; an empty message is INVALID_ARGUMENT."""
    missing = pubsub.topic("missing")
    with pytest.raises(exceptions.NotFound):
        pubsub.publisher.publish(missing, b"x").result(timeout=10)
    topic = pubsub.topic("empty")
    pubsub.publisher.create_topic(name=topic)
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.publisher.publish(topic, b"").result(timeout=10)
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.publisher.publish(topic, b"x", googthing="1").result(timeout=10)


def test_subscription_lifecycle_and_defaults(pubsub: PubSubClients) -> None:
    """A subscription reports Pub/Sub's defaults, lists under its topic, and deletes once."""
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    created = pubsub.subscriber.create_subscription(name=sub, topic=topic)
    assert created.ack_deadline_seconds == 10
    assert created.message_retention_duration.total_seconds() == 7 * 24 * 3600
    with pytest.raises(exceptions.AlreadyExists):
        pubsub.subscriber.create_subscription(name=sub, topic=topic)
    assert pubsub.subscriber.get_subscription(subscription=sub).topic == topic
    assert list(pubsub.publisher.list_topic_subscriptions(topic=topic)) == [sub]
    listed = pubsub.subscriber.list_subscriptions(project=f"projects/{pubsub.project}")
    assert sub in [s.name for s in listed]
    pubsub.subscriber.delete_subscription(subscription=sub)
    with pytest.raises(exceptions.NotFound):
        pubsub.subscriber.delete_subscription(subscription=sub)
    with pytest.raises(exceptions.NotFound):
        pubsub.subscriber.get_subscription(subscription=sub)


BAD = exceptions.InvalidArgument
MIXED = 'attributes.a = "x" AND attributes.b = "y" OR attributes:c'


def _dlp(attempts: int) -> dict[str, object]:
    return {"dead_letter_policy": {"dead_letter_topic": "DLT", "max_delivery_attempts": attempts}}


def _retry(low: int, high: int) -> dict[str, object]:
    return {
        "retry_policy": {"minimum_backoff": {"seconds": low}, "maximum_backoff": {"seconds": high}}
    }


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"ack_deadline_seconds": 5}, BAD),
        ({"ack_deadline_seconds": 601}, BAD),
        ({"filter": MIXED}, BAD),
        (_dlp(4), BAD),
        (_dlp(101), BAD),
        (_retry(20, 10), BAD),
        (_retry(0, 601), BAD),
        ({"message_retention_duration": {"seconds": 60}}, BAD),
        ({"topic": "MISSING"}, exceptions.NotFound),
    ],
)
def test_invalid_subscription_settings_are_refused(
    pubsub: PubSubClients, settings: dict[str, object], error: type[Exception]
) -> None:
    """Out-of-range deadlines, attempts, backoffs, retention, bad filters, missing topics fail."""
    topic = pubsub.topic("t")
    pubsub.publisher.create_topic(name=topic)
    request: dict[str, object] = {"name": pubsub.subscription("s"), "topic": topic, **settings}
    if request["topic"] == "MISSING":
        request["topic"] = pubsub.topic("missing")
    policy = request.get("dead_letter_policy")
    if isinstance(policy, dict):
        policy["dead_letter_topic"] = topic
    with pytest.raises(error):
        pubsub.subscriber.create_subscription(request=request)


def test_update_subscription_changes_mutable_settings_only(pubsub: PubSubClients) -> None:
    """UpdateSubscription changes the ack deadline; the filter is immutable (INVALID_ARGUMENT)."""
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    updated = pubsub.subscriber.update_subscription(
        subscription={"name": sub, "ack_deadline_seconds": 42},
        update_mask=field_mask_pb2.FieldMask(paths=["ack_deadline_seconds"]),
    )
    assert updated.ack_deadline_seconds == 42
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.update_subscription(
            subscription={"name": sub, "filter": "attributes:x"},
            update_mask=field_mask_pb2.FieldMask(paths=["filter"]),
        )


def test_deleting_a_topic_detaches_its_subscriptions(pubsub: PubSubClients) -> None:
    """After DeleteTopic the subscription survives with topic `_deleted-topic_`."""
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    pubsub.publisher.delete_topic(topic=topic)
    assert pubsub.subscriber.get_subscription(subscription=sub).topic == "_deleted-topic_"


def test_delivery_calls_validate_their_arguments(pubsub: PubSubClients) -> None:
    """Pull needs max_messages > 0, ModifyAckDeadline 0..600 s, both an existing subscription."""
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    publish_all(pubsub.publisher, topic, [b"x"])
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.pull(subscription=sub, max_messages=0, timeout=5)
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=["a"], ack_deadline_seconds=601
        )
    with pytest.raises(exceptions.NotFound):
        pubsub.subscriber.pull(subscription=pubsub.subscription("nope"), max_messages=1, timeout=5)
    with pytest.raises(exceptions.NotFound):
        pubsub.subscriber.acknowledge(subscription=pubsub.subscription("nope"), ack_ids=["a"])


def test_fixture_emulator_is_shared(gcp_emulator: GcpEmulator, pubsub: PubSubClients) -> None:
    """The pubsub fixture's clients talk to the session emulator (its backend sees their topics)."""
    topic = pubsub.topic("shared")
    pubsub.publisher.create_topic(name=topic)
    assert topic in gcp_emulator.backend.list_topics(f"projects/{pubsub.project}")
