"""The gcp adapter beyond the contract: config, names, wire format, native features, shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from polybus.adapters.gcp.config import GcpConfig, parse_config
from polybus.adapters.gcp.emulator import GcpEmulator
from polybus.adapters.gcp.mapping import resource_id
from polybus.adapters.gcp.plugin import CAPABILITIES, make_adapter, polybus_register_adapters
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec, SupportsReplay
from polybus.core.errors import AdapterError, ConfigError, UnsupportedError
from polybus.core.events import new_event
from polybus.core.filters import parse_filter
from polybus.core.hookspecs import AdapterInfo
from tests.contract.helpers import receive_n
from tests.fixtures.gcp import PROJECT
from tests.gcp.helpers import PubSubClients, pull_all

FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"topic-{suffix}", f"sub-{suffix}"


def _spec(sub: str, topic: str, flt: Any = None, **policy: Any) -> SubscriptionSpec:
    return SubscriptionSpec(sub, topic, flt, DeliveryPolicy(retry=FAST, **policy))


def test_plugin_registers_gcp_with_everything_provider_specific() -> None:
    """One AdapterInfo named gcp carries capabilities, sizing, filters, emulator, requirements, profile."""
    registered: list[AdapterInfo] = []
    polybus_register_adapters(registered.append)
    [info] = registered
    assert (info.name, info.secret_keys) == ("gcp", ())
    caps = info.capabilities
    assert (caps.ordering, caps.replay, caps.native_dead_letter, caps.native_filters) == (
        True,
        True,
        True,
        True,
    )
    assert (caps.delivery_attempts, caps.ack_deadline) == ((1, 100), (10.0, 600.0))
    assert (caps.delivery_modes, caps.exactly_once) == (("pull",), False)
    assert info.sizing is not None and caps.max_event_size == info.sizing.limit.limit == 10_000_000
    assert info.filters is not None and info.filters.native_name == "Pub/Sub subscription filter"
    assert info.requires is not None and info.requires.modules == ("google.cloud.pubsub_v1",)
    assert info.emulator is not None and info.emulator.requires is not None
    assert info.emulator.requires.modules == ("grpc", "google.cloud.pubsub_v1")
    assert info.sim_profile is not None and info.sim_profile.is_file()


def test_plugin_import_loads_no_sdk() -> None:
    """Importing the plugin module imports neither google-cloud-pubsub nor grpc."""
    code = (
        "import sys, polybus.adapters.gcp.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_bus_refuses_what_pubsub_cannot_honour(gcp_adapter_factory: Callable[[], Any]) -> None:
    """Ack deadlines outside Pub/Sub's 10..600 s are refused at subscribe time, not stretched."""
    bus = Bus(gcp_adapter_factory(), capabilities=CAPABILITIES)
    with pytest.raises(UnsupportedError) as caught:
        bus.subscribe("short", lambda e: None, policy=DeliveryPolicy(ack_deadline=5))
    assert [p.field for p in caught.value.problems] == ["policy.ack_deadline"]


def test_config_defaults_and_every_problem_at_once() -> None:
    """An empty section gives the defaults; bad keys and values are all reported together."""
    assert parse_config({}) == GcpConfig()
    with pytest.raises(ConfigError) as caught:
        parse_config({"projekt": "x"})
    assert [p.field for p in caught.value.problems] == ["gcp.projekt"]
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "project": "UPPER",
                "emulator_host": "http://localhost:8085",
                "content_mode": "xml",
                "batch_max_messages": 5000,
                "batch_max_latency": -1,
            }
        )
    fields = {p.field for p in caught.value.problems}
    assert fields == {
        "gcp.project",
        "gcp.emulator_host",
        "gcp.content_mode",
        "gcp.batch_max_messages",
        "gcp.batch_max_latency",
    }


def test_factory_validates_before_any_network_call() -> None:
    """make_adapter raises ConfigError for a malformed section without contacting anything."""
    with pytest.raises(ConfigError):
        make_adapter({"emulator_host": "nohost"})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders"),
        ("orders.v2~eu", "orders.v2~eu"),
        ("a", "pb-a"),
        ("9lives", "pb-9lives"),
        ("goog-orders", "pb-goog-orders"),
        ("bestellungen/ä", "bestellungen%2F%C3%A4"),
    ],
)
def test_portable_names_map_to_valid_pubsub_ids(name: str, expected: str) -> None:
    """Valid names map to themselves; others are percent-encoded and prefixed as needed."""
    assert resource_id(name) == expected


def test_emulator_host_leaves_the_environment_alone(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """Pointing the adapter at the emulator does not set PUBSUB_EMULATOR_HOST for the process."""
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    adapter = gcp_adapter_factory()
    topic, _ = _names()
    adapter.publish(topic, [new_event("com.example.x", "/x")])
    assert os.environ.get("PUBSUB_EMULATOR_HOST") == before


def test_binary_mode_on_the_wire_with_ordering_key(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """A raw client sees ce-* attributes, content-type, JSON data and partitionkey as ordering key."""
    adapter = gcp_adapter_factory()
    topic, _ = _names()
    raw_sub = f"projects/{PROJECT}/subscriptions/raw-{uuid.uuid4().hex[:8]}"
    adapter.publish(topic, [])  # creates the topic
    pubsub.subscriber.create_subscription(name=raw_sub, topic=f"projects/{PROJECT}/topics/{topic}")
    event = new_event("com.example.x", "/x", {"n": 1}, extensions={"partitionkey": "cust-1"})
    adapter.publish(topic, [event])
    [received] = pull_all(pubsub.subscriber, raw_sub, expected=1)
    message = received.message
    assert message.attributes["ce-type"] == "com.example.x"
    assert message.attributes["ce-id"] == event.get_id()
    assert message.attributes["content-type"] == "application/json"
    assert message.attributes["ce-partitionkey"] == "cust-1"
    assert message.ordering_key == "cust-1"
    assert message.data == b'{"n":1}'


def test_structured_mode_round_trips_and_is_readable_by_binary_adapters(
    gcp_emulator: GcpEmulator, gcp_adapter_factory: Callable[[], Any]
) -> None:
    """A structured-mode publisher's events are read by a default (binary-mode) consumer."""
    structured = make_adapter(
        {"project": PROJECT, "emulator_host": gcp_emulator.endpoint, "content_mode": "structured"}
    )
    try:
        consumer = gcp_adapter_factory()
        topic, sub = _names()
        consumer.provision(_spec(sub, topic))
        event = new_event("com.example.s", "/s", {"k": "v"}, subject="x")
        structured.publish(topic, [event])
        [delivery] = receive_n(consumer, sub, 1)
        assert delivery.event.get_id() == event.get_id()
        assert delivery.event.get_data() == {"k": "v"}
        delivery.ack()
    finally:
        structured.close()


def test_event_format_is_checked_against_the_known_formats_and_the_mode() -> None:
    """event_format names a known format, and a binary one needs structured mode; the error says which rule."""
    assert parse_config(
        {"content_mode": "structured", "event_format": "avro-compact"}
    ) == GcpConfig(content_mode="structured", event_format="avro-compact")
    for settings, rule in (
        ({"event_format": "xml"}, "must be one of json, avro, avro-compact, protobuf"),
        ({"event_format": "protobuf"}, "needs content_mode = 'structured'"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(settings)
        [problem] = caught.value.problems
        assert (problem.field, problem.value) == ("gcp.event_format", settings["event_format"])
        assert rule in problem.rule


@pytest.mark.parametrize("event_format", ["avro", "avro-compact", "protobuf"])
def test_structured_binary_event_formats_travel_and_are_read_by_any_consumer(
    event_format: str,
    gcp_emulator: GcpEmulator,
    gcp_adapter_factory: Callable[[], Any],
    pubsub: PubSubClients,
) -> None:
    """A publisher set to a binary event format sends it with its content type; a default consumer reads it."""
    publisher = make_adapter(
        {
            "project": PROJECT,
            "emulator_host": gcp_emulator.endpoint,
            "content_mode": "structured",
            "event_format": event_format,
        }
    )
    try:
        consumer = gcp_adapter_factory()
        topic, sub = _names()
        consumer.provision(_spec(sub, topic, parse_filter({"prefix": {"subject": "ord-"}})))
        raw_sub = f"projects/{PROJECT}/subscriptions/raw-{uuid.uuid4().hex[:8]}"
        pubsub.subscriber.create_subscription(
            name=raw_sub, topic=f"projects/{PROJECT}/topics/{topic}"
        )
        events = [
            new_event("com.example.o", "/shop", {"n": 1, "lines": [{"sku": "a"}]}, subject="ord-1"),
            new_event("com.example.o", "/shop", {"n": 2}, subject="other"),
        ]
        publisher.publish(topic, events)
        [delivery] = receive_n(consumer, sub, 1)
        assert delivery.event.get_attributes() == events[0].get_attributes()
        assert delivery.event.get_data() == events[0].get_data()
        delivery.ack()
        raw = pull_all(pubsub.subscriber, raw_sub, expected=2)
        content_type = f"application/cloudevents+{event_format}"
        assert {r.message.attributes["content-type"] for r in raw} == {content_type}
        assert {r.message.attributes["ce-subject"] for r in raw} == {"ord-1", "other"}
    finally:
        publisher.close()


def test_native_filter_is_installed_and_residual_returned(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """An exact/prefix filter becomes the subscription's Pub/Sub filter; non-matches never arrive."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    flt = parse_filter({"all": [{"prefix": {"type": "com.shop."}}, {"exact": {"source": "/eu"}}]})
    residual = adapter.provision(_spec(sub, topic, flt))
    assert residual is None
    path = f"projects/{PROJECT}/subscriptions/{sub}"
    installed = pubsub.subscriber.get_subscription(subscription=path).filter
    assert "ce-type" in installed
    assert "ce-source" in installed
    events = [
        new_event("com.shop.order", "/eu"),
        new_event("com.shop.order", "/us"),
        new_event("com.other", "/eu"),
    ]
    adapter.publish(topic, events)
    deliveries = receive_n(adapter, sub, 3, timeout=1.5)
    assert [d.event.get_id() for d in deliveries] == [events[0].get_id()]
    deliveries[0].ack()


def test_suffix_filter_is_partly_native_with_a_residual(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """Pub/Sub has no suffix operator: presence is native and the suffix test is the residual."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    flt = parse_filter({"suffix": {"subject": "-test"}})
    assert adapter.provision(_spec(sub, topic, flt)) == flt


def test_policy_maps_to_native_dead_letter_and_retry_settings(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """Attempts (clamped to 5..100), backoffs, ack deadline and ordering land on the subscription."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    retry = RetryPolicy(initial_backoff=0.5, max_backoff=900.0)
    policy = DeliveryPolicy(max_delivery_attempts=3, retry=retry, ordered=True, ack_deadline=5)
    adapter.provision(SubscriptionSpec(sub, topic, None, policy))
    created = pubsub.subscriber.get_subscription(
        subscription=f"projects/{PROJECT}/subscriptions/{sub}"
    )
    assert created.dead_letter_policy.max_delivery_attempts == 5
    assert created.dead_letter_policy.dead_letter_topic == f"projects/{PROJECT}/topics/{sub}-dlq"
    assert created.retry_policy.minimum_backoff.total_seconds() == 0.5
    assert created.retry_policy.maximum_backoff.total_seconds() == 600
    assert created.ack_deadline_seconds == 10
    assert created.enable_message_ordering


def test_reprovisioning_updates_or_recreates(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """A changed ack deadline is updated in place; a changed filter recreates the subscription."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    path = f"projects/{PROJECT}/subscriptions/{sub}"
    adapter.provision(_spec(sub, topic))
    adapter.provision(_spec(sub, topic, ack_deadline=45))
    assert pubsub.subscriber.get_subscription(subscription=path).ack_deadline_seconds == 45
    adapter.provision(_spec(sub, topic, parse_filter({"exact": {"type": "a"}}), ack_deadline=45))
    assert (
        pubsub.subscriber.get_subscription(subscription=path).filter == 'attributes.ce-type = "a"'
    )


def test_native_dead_lettering_at_five_attempts(gcp_adapter_factory: Callable[[], Any]) -> None:
    """With 5 portable attempts the fifth nack is forwarded by Pub/Sub's own dead-letter policy."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(_spec(sub, topic, max_delivery_attempts=5))
    event = new_event("com.example.fail", "/f")
    adapter.publish(topic, [event])
    attempts = []
    for _ in range(5):
        [delivery] = receive_n(adapter, sub, 1)
        attempts.append(delivery.attempt)
        delivery.nack(0.0)
    assert attempts == [1, 2, 3, 4, 5]
    [dead] = receive_n(adapter, sub, 1, dead=True)
    assert dead.event.get_id() == event.get_id()
    dead.ack()


def test_attempts_below_five_are_honoured_by_any_adapter(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """Two portable attempts: an adapter that did not provision still dead-letters after the second."""
    topic, sub = _names()
    gcp_adapter_factory().provision(_spec(sub, topic, max_delivery_attempts=2))
    path = f"projects/{PROJECT}/subscriptions/{sub}"
    labels = pubsub.subscriber.get_subscription(subscription=path).labels
    assert labels["polybus-max-delivery-attempts"] == "2"
    adapter = gcp_adapter_factory()
    event = new_event("com.example.fail", "/f")
    adapter.publish(topic, [event])
    [first] = receive_n(adapter, sub, 1)
    first.nack(0.0)
    [second] = receive_n(adapter, sub, 1)
    assert second.attempt == 2
    second.nack(0.0)
    [dead] = receive_n(adapter, sub, 1, dead=True)
    assert dead.event.get_id() == event.get_id()
    dead.ack()


def test_a_delivery_past_the_attempts_is_dead_lettered_not_handed_out(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """With one attempt, an event released unsettled (as on a lost lease) comes back only as a dead letter."""
    topic, sub = _names()
    adapter = gcp_adapter_factory()
    adapter.provision(_spec(sub, topic, max_delivery_attempts=1))
    event = new_event("com.example.slow", "/s")
    adapter.publish(topic, [event])
    [first] = receive_n(adapter, sub, 1)
    assert first.attempt == 1
    adapter.close()  # releases the unsettled delivery: Pub/Sub counts a failed attempt
    again = gcp_adapter_factory()
    assert receive_n(again, sub, 1, timeout=2.0) == []
    [dead] = pull_all(pubsub.subscriber, f"projects/{PROJECT}/subscriptions/{sub}-dlq", expected=1)
    assert dead.message.attributes["ce-id"] == event.get_id()
    assert "past the 1 allowed" in dead.message.attributes["polybus-dead-letter-reason"]


def test_explicit_dead_letter_carries_the_reason(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """dead_letter(reason) puts the reason in the polybus-dead-letter-reason attribute."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [new_event("com.example.bad", "/b")])
    [delivery] = receive_n(adapter, sub, 1)
    delivery.dead_letter("schema mismatch")
    [dead] = pull_all(pubsub.subscriber, f"projects/{PROJECT}/subscriptions/{sub}-dlq", expected=1)
    assert dead.message.attributes["polybus-dead-letter-reason"] == "schema mismatch"
    assert dead.message.attributes["ce-type"] == "com.example.bad"
    pubsub.subscriber.acknowledge(
        subscription=f"projects/{PROJECT}/subscriptions/{sub}-dlq", ack_ids=[dead.ack_id]
    )


def test_unreadable_messages_are_dead_lettered_not_delivered(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """A message that is no CloudEvent goes to the dead-letter subscription with the reason."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(_spec(sub, topic))
    pubsub.publisher.publish(f"projects/{PROJECT}/topics/{topic}", b"garbage", origin="x").result()
    good = new_event("com.example.ok", "/ok")
    adapter.publish(topic, [good])
    [delivery] = receive_n(adapter, sub, 1)
    assert delivery.event.get_id() == good.get_id()
    delivery.ack()
    [dead] = pull_all(pubsub.subscriber, f"projects/{PROJECT}/subscriptions/{sub}-dlq", expected=1)
    assert dead.message.data == b"garbage"
    assert dead.message.attributes["polybus-dead-letter-reason"].startswith("not a CloudEvent")


def test_replay_seeks_back_to_a_time(gcp_adapter_factory: Callable[[], Any]) -> None:
    """replay(since) redelivers events already acked, published at or after `since`."""
    adapter = gcp_adapter_factory()
    assert isinstance(adapter, SupportsReplay)
    topic, sub = _names()
    adapter.provision(_spec(sub, topic))
    since = datetime.now(UTC) - timedelta(seconds=1)
    events = [new_event("com.example.r", "/r", {"n": i}) for i in range(3)]
    adapter.publish(topic, events)
    for delivery in receive_n(adapter, sub, 3):
        delivery.ack()
    time.sleep(0.2)  # let the client send the acks before seeking
    adapter.replay(sub, since)
    replayed = receive_n(adapter, sub, 3)
    assert sorted(d.event.get_id() for d in replayed) == sorted(e.get_id() for e in events)
    for delivery in replayed:
        delivery.ack()


def test_close_releases_unsettled_deliveries_at_once(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """Deliveries handed out or buffered but not settled are redelivered right after close()."""
    first = gcp_adapter_factory()
    topic, sub = _names()
    first.provision(_spec(sub, topic))
    events = [new_event("com.example.c", "/c", {"n": i}) for i in range(20)]
    first.publish(topic, events)
    held = receive_n(first, sub, 5)
    held[0].ack()
    first.close()
    with pytest.raises(AdapterError):
        held[1].ack()
    second = gcp_adapter_factory()
    rest = receive_n(second, sub, 19, timeout=5.0)
    assert sorted(d.event.get_id() for d in rest) == sorted(e.get_id() for e in events[1:])
    for delivery in rest:
        delivery.ack()


def test_settling_twice_is_refused(gcp_adapter_factory: Callable[[], Any]) -> None:
    """A delivery is settled exactly once; a second ack raises."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(_spec(sub, topic))
    adapter.publish(topic, [new_event("com.example.once", "/o")])
    [delivery] = receive_n(adapter, sub, 1)
    delivery.ack()
    with pytest.raises(AdapterError):
        delivery.ack()


def test_publish_recreates_a_topic_deleted_behind_its_back(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """If the cached topic was deleted elsewhere, publish creates it again and succeeds."""
    adapter = gcp_adapter_factory()
    topic, _ = _names()
    adapter.publish(topic, [new_event("com.example.a", "/a")])
    pubsub.publisher.delete_topic(topic=f"projects/{PROJECT}/topics/{topic}")
    adapter.publish(topic, [new_event("com.example.b", "/b")])
    assert pubsub.publisher.get_topic(topic=f"projects/{PROJECT}/topics/{topic}")


def test_receive_on_a_missing_subscription_fails_clearly(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """Receiving from a subscription that does not exist raises AdapterError."""
    adapter = gcp_adapter_factory()
    with pytest.raises(AdapterError):
        adapter.receive(f"missing-{uuid.uuid4().hex[:8]}", 1, 0.5)
