"""Namespace topics and pull delivery, driven with the real azure-eventgrid clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient

from polybus.adapters.azure.provisioning import EmulatorAdmin


def _topic_with_sub(
    admin: EmulatorAdmin, name: Callable[[str], str], **settings: Any
) -> tuple[str, str]:
    topic, sub = name("orders"), name("sub")
    admin.put_namespace_topic(topic)
    admin.put_pull_subscription(topic, sub, **settings)
    return topic, sub


def test_publish_and_receive_round_trip_keeps_data_and_extensions(azure_admin, sdk, name):
    """JSON data, binary data and extension attributes come back as they were published."""
    topic, sub = _topic_with_sub(azure_admin, name)
    sent = [
        CloudEvent(source="/shop", type="order.placed", data={"n": 1}, subject="eu/1"),
        CloudEvent(
            source="/shop", type="order.paid", data=b"\x00\x01", extensions={"region": "eu"}
        ),
    ]
    sdk.publisher(topic).send(sent)
    got = sdk.consumer(topic, sub).receive(max_events=10, max_wait_time=10)
    assert [d.event.id for d in got] == [e.id for e in sent]
    assert got[0].event.data == {"n": 1}
    assert got[0].event.subject == "eu/1"
    assert got[1].event.data == b"\x00\x01"
    assert got[1].event.extensions == {"region": "eu"}
    assert all(d.broker_properties.delivery_count == 1 for d in got)


def test_acknowledged_events_are_not_delivered_again(azure_admin, sdk, name):
    """After acknowledge the subscription is empty; a second acknowledge of the token fails."""
    topic, sub = _topic_with_sub(azure_admin, name)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t", data=None))
    consumer = sdk.consumer(topic, sub)
    (delivery,) = consumer.receive(max_events=5, max_wait_time=10)
    token = delivery.broker_properties.lock_token
    assert consumer.acknowledge(lock_tokens=[token]).succeeded_lock_tokens == [token]
    assert consumer.receive(max_events=5, max_wait_time=0) == []
    again = consumer.acknowledge(lock_tokens=[token])
    assert again.failed_lock_tokens[0].lock_token == token
    assert again.failed_lock_tokens[0].error.code == "TokenLost"


def test_release_redelivers_with_a_higher_delivery_count(azure_admin, sdk, name):
    """A released event is received again with deliveryCount 2."""
    topic, sub = _topic_with_sub(azure_admin, name)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t"))
    consumer = sdk.consumer(topic, sub)
    (first,) = consumer.receive(max_events=1, max_wait_time=10)
    consumer.release(lock_tokens=[first.broker_properties.lock_token])
    (second,) = consumer.receive(max_events=1, max_wait_time=10)
    assert second.event.id == first.event.id
    assert second.broker_properties.delivery_count == 2


def test_release_with_delay_hides_the_event_until_the_delay_passes(
    fast_emulator, fast_admin, sdk, name
):
    """releaseDelayInSeconds=10 (scaled 1000x) hides the event, then it comes back."""
    topic, sub = _topic_with_sub(fast_admin, name)
    sdk.publisher(topic, emulator=fast_emulator).send(CloudEvent(source="/s", type="t"))
    consumer = sdk.consumer(topic, sub, emulator=fast_emulator)
    (first,) = consumer.receive(max_events=1, max_wait_time=10)
    consumer.release(lock_tokens=[first.broker_properties.lock_token], release_delay=10)
    assert fast_admin.pull_subscription(topic, sub)["delayed"] == 1
    (second,) = consumer.receive(max_events=1, max_wait_time=10)
    assert second.event.id == first.event.id


def test_release_delay_outside_the_documented_values_is_refused(azure_admin, sdk, name):
    """Only 0, 10, 60, 600 and 3600 seconds are accepted release delays."""
    topic, sub = _topic_with_sub(azure_admin, name)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t"))
    consumer = sdk.consumer(topic, sub)
    (first,) = consumer.receive(max_events=1, max_wait_time=10)
    with pytest.raises(HttpResponseError) as caught:
        consumer.release(lock_tokens=[first.broker_properties.lock_token], release_delay=5)
    assert caught.value.status_code == 400


def test_reject_dead_letters_with_the_reason_and_attempts(azure_admin, sdk, name):
    """A rejected event is dead-lettered at once with reason, attempts and times."""
    topic, sub = _topic_with_sub(azure_admin, name)
    event = CloudEvent(source="/s", type="t", data={"bad": True})
    sdk.publisher(topic).send(event)
    consumer = sdk.consumer(topic, sub)
    (delivery,) = consumer.receive(max_events=1, max_wait_time=10)
    consumer.reject(lock_tokens=[delivery.broker_properties.lock_token])
    (record,) = azure_admin.pull_dead_letters(topic, sub)
    assert record["event"]["id"] == event.id
    props = record["deadLetterProperties"]
    assert props["deadLetterReason"] == "Rejected"
    assert props["deliveryAttempts"] == 1
    assert {"publishTime", "lastDeliveryAttemptTime", "lastDeliveryOutcome"} <= props.keys()
    assert consumer.receive(max_events=1, max_wait_time=0) == []


def test_expired_lock_makes_the_event_visible_again(azure_admin, sdk, name):
    """An unsettled event comes back after its lock expires; the old token is then lost."""
    topic, sub = _topic_with_sub(azure_admin, name, lock_duration=0.2)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t"))
    consumer = sdk.consumer(topic, sub)
    (first,) = consumer.receive(max_events=1, max_wait_time=10)
    (second,) = consumer.receive(max_events=1, max_wait_time=10)
    assert second.event.id == first.event.id
    assert second.broker_properties.delivery_count == 2
    stale = consumer.acknowledge(lock_tokens=[first.broker_properties.lock_token])
    assert stale.failed_lock_tokens
    assert not stale.succeeded_lock_tokens


def test_renewed_lock_outlives_the_original_lock_duration(azure_admin, sdk, name):
    """renewLock extends the lock, so acknowledging after the first duration still works."""
    topic, sub = _topic_with_sub(azure_admin, name, lock_duration=1.0)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t"))
    consumer = sdk.consumer(topic, sub)
    (delivery,) = consumer.receive(max_events=1, max_wait_time=10)
    token = delivery.broker_properties.lock_token
    time.sleep(0.6)
    assert consumer.renew_locks(lock_tokens=[token]).succeeded_lock_tokens == [token]
    time.sleep(0.6)
    assert consumer.acknowledge(lock_tokens=[token]).succeeded_lock_tokens == [token]
    assert consumer.renew_locks(lock_tokens=["no-such-token"]).failed_lock_tokens


def test_max_delivery_count_dead_letters_into_the_dead_letter_topic(azure_admin, sdk, name):
    """After maxDeliveryCount releases the event goes to the dead-letter topic's subscription."""
    dlq = name("orders-dlq")
    azure_admin.put_namespace_topic(dlq)
    azure_admin.put_pull_subscription(dlq, "reader")
    topic, sub = _topic_with_sub(azure_admin, name, max_delivery_count=2, dead_letter_topic=dlq)
    event = CloudEvent(source="/s", type="t", data={"x": 1})
    sdk.publisher(topic).send(event)
    consumer = sdk.consumer(topic, sub)
    for _ in range(2):
        (delivery,) = consumer.receive(max_events=1, max_wait_time=10)
        consumer.release(lock_tokens=[delivery.broker_properties.lock_token])
    assert consumer.receive(max_events=1, max_wait_time=0) == []
    (dead,) = sdk.consumer(dlq, "reader").receive(max_events=1, max_wait_time=10)
    assert dead.event.id == event.id
    assert dead.event.data == {"x": 1}
    props = dead.broker_properties["deadLetterProperties"]
    assert props["deadLetterReason"] == "MaxDeliveryCountExceeded"
    assert props["deliveryAttempts"] == 2


def test_subscription_filter_delivers_only_matching_events(azure_admin, sdk, name):
    """includedEventTypes and advanced filters are evaluated by the emulator."""
    flt = {
        "includedEventTypes": ["order.placed", "order.paid"],
        "filters": [{"operatorType": "StringBeginsWith", "key": "subject", "values": ["EU/"]}],
    }
    topic, sub = _topic_with_sub(azure_admin, name, filter=flt)
    sdk.publisher(topic).send(
        [
            CloudEvent(source="/s", type="order.placed", subject="eu/1"),
            CloudEvent(source="/s", type="order.placed", subject="us/1"),
            CloudEvent(source="/s", type="order.shipped", subject="eu/2"),
            CloudEvent(source="/s", type="ORDER.PAID", subject="eu/3"),
        ]
    )
    got = sdk.consumer(topic, sub).receive(max_events=10, max_wait_time=10)
    assert sorted(d.event.subject for d in got) == ["eu/1", "eu/3"]


def test_waiting_receive_returns_when_an_event_is_published(azure_admin, sdk, name):
    """A long-polling receive wakes up as soon as an event arrives."""
    topic, sub = _topic_with_sub(azure_admin, name)
    consumer = sdk.consumer(topic, sub)
    got: list = []
    waiter = threading.Thread(
        target=lambda: got.extend(consumer.receive(max_events=1, max_wait_time=30))
    )
    waiter.start()
    time.sleep(0.1)
    sdk.publisher(topic).send(CloudEvent(source="/s", type="t"))
    waiter.join(timeout=30)
    assert len(got) == 1


def test_wrong_key_is_refused_for_publish_and_receive(azure_emulator, azure_admin, name):
    """A bad access key gets 401, surfaced by the SDK as ClientAuthenticationError."""
    topic, sub = _topic_with_sub(azure_admin, name)
    bad = AzureKeyCredential("bm90LXRoZS1rZXk=")
    with (
        EventGridPublisherClient(
            azure_emulator.endpoint, bad, namespace_topic=topic, retry_total=0
        ) as publisher,
        pytest.raises(ClientAuthenticationError),
    ):
        publisher.send(CloudEvent(source="/s", type="t"))
    with (
        EventGridConsumerClient(
            azure_emulator.endpoint, bad, namespace_topic=topic, subscription=sub, retry_total=0
        ) as consumer,
        pytest.raises(ClientAuthenticationError),
    ):
        consumer.receive(max_events=1, max_wait_time=0)


def test_unknown_topic_and_subscription_are_not_found(azure_admin, sdk, name):
    """Publishing to a missing topic or receiving from a missing subscription is a 404."""
    with pytest.raises(ResourceNotFoundError):
        sdk.publisher(name("missing")).send(CloudEvent(source="/s", type="t"))
    topic, _ = _topic_with_sub(azure_admin, name)
    with pytest.raises(ResourceNotFoundError):
        sdk.consumer(topic, "nope").receive(max_events=1, max_wait_time=0)


def test_namespace_publish_over_one_megabyte_is_413(azure_admin, sdk, name):
    """A request body over 1 MB is refused with 413 before anything is stored."""
    topic, sub = _topic_with_sub(azure_admin, name)
    big = CloudEvent(source="/s", type="t", data="x" * (1024 * 1024))
    with pytest.raises(HttpResponseError) as caught:
        sdk.publisher(topic).send(big)
    assert caught.value.status_code == 413
    assert azure_admin.pull_subscription(topic, sub)["ready"] == 0
