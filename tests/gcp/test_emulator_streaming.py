"""StreamingPull through the real client: subscribe(), ordering keys, flow control, stream acks."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.types import StreamingPullRequest

from polybus.adapters.gcp.emulator import GcpEmulator
from tests.gcp.helpers import Collector, PubSubClients, publish_all, pull_all, streaming


def _setup(pubsub: PubSubClients, **settings: object) -> tuple[str, str]:
    topic, sub = pubsub.topic("t"), pubsub.subscription("s")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(request={"name": sub, "topic": topic, **settings})
    return topic, sub


def test_subscribe_receives_and_acks_everything(pubsub: PubSubClients) -> None:
    """subscribe() gets every published message once; acked ones are gone afterwards."""
    topic, sub = _setup(pubsub)
    payloads = [f"m{i}".encode() for i in range(200)]
    publish_all(pubsub.publisher, topic, payloads)
    collector = Collector()
    with streaming(pubsub.subscriber, sub, collector):
        got = collector.wait_for(200)
    assert sorted(m.data for m in got) == sorted(payloads)
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []


def test_ordering_keys_are_delivered_in_publish_order(pubsub: PubSubClients) -> None:
    """On an ordered subscription, each ordering key's messages arrive in the order published."""
    topic, sub = _setup(pubsub, enable_message_ordering=True)
    futures = [
        pubsub.publisher.publish(topic, f"{key}:{i}".encode(), ordering_key=key)
        for i in range(40)
        for key in ("a", "b", "c")
    ]
    for future in futures:
        future.result()
    collector = Collector()
    with streaming(pubsub.subscriber, sub, collector):
        got = collector.wait_for(120)
    for key in ("a", "b", "c"):
        seq = [int(m.data.split(b":")[1]) for m in got if m.ordering_key == key]
        assert seq == list(range(40))


def test_nack_in_an_ordered_key_redelivers_it_and_its_successors(pubsub: PubSubClients) -> None:
    """Nacking one message of a key redelivers it and every later outstanding one, still in order."""
    topic, sub = _setup(pubsub, enable_message_ordering=True)
    for i in range(3):
        pubsub.publisher.publish(topic, f"k:{i}".encode(), ordering_key="k").result()
    first = pull_all(pubsub.subscriber, sub, expected=3)
    assert [m.message.data for m in first] == [b"k:0", b"k:1", b"k:2"]
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[first[0].ack_id])
    pubsub.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first[1].ack_id], ack_deadline_seconds=0
    )
    again = pull_all(pubsub.subscriber, sub, expected=2)
    assert [m.message.data for m in again] == [b"k:1", b"k:2"]
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in again])


def test_an_ordered_key_waits_while_a_batch_is_outstanding(pubsub: PubSubClients) -> None:
    """A key's next messages are held until its outstanding batch is settled; other keys flow."""
    topic, sub = _setup(pubsub, enable_message_ordering=True)
    pubsub.publisher.publish(topic, b"a:0", ordering_key="a").result()
    [held] = pull_all(pubsub.subscriber, sub, expected=1)
    pubsub.publisher.publish(topic, b"a:1", ordering_key="a").result()
    pubsub.publisher.publish(topic, b"b:0", ordering_key="b").result()
    [other] = pull_all(pubsub.subscriber, sub, expected=2, timeout=1.0)
    assert other.message.data == b"b:0"
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[held.ack_id, other.ack_id])
    [nxt] = pull_all(pubsub.subscriber, sub, expected=1)
    assert nxt.message.data == b"a:1"
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[nxt.ack_id])


def test_flow_control_limits_outstanding_messages_per_stream(
    pubsub: PubSubClients, gcp_emulator: GcpEmulator
) -> None:
    """With max_messages=5 and a callback that holds on, the server leases at most 5 at a time."""
    topic, sub = _setup(pubsub)
    publish_all(pubsub.publisher, topic, [f"m{i}".encode() for i in range(30)])
    release = threading.Event()
    held: list[Any] = []

    def hold(message: Any) -> None:
        held.append(message)
        release.wait(10)
        message.ack()

    collector = Collector(hold)
    state = gcp_emulator.backend.subscription(sub)
    flow = pubsub_v1.types.FlowControl(max_messages=5)
    with streaming(pubsub.subscriber, sub, collector, flow_control=flow):
        give_up = time.monotonic() + 10
        while len(held) < 5 and time.monotonic() < give_up:
            time.sleep(0.01)
        time.sleep(0.2)  # room for the server to over-deliver, were it to ignore the limit
        with state.cond:
            outstanding = state.counts()["outstanding"]
        release.set()
        collector.wait_for(30)
    assert outstanding == 5
    assert len(collector.messages) == 30


class _Requests:
    """A request stream we feed by hand, as clients that ack on the stream do."""

    def __init__(self, first: StreamingPullRequest) -> None:
        self._queue: queue.Queue[StreamingPullRequest | None] = queue.Queue()
        self._queue.put(first)

    def send(self, request: StreamingPullRequest | None) -> None:
        self._queue.put(request)

    def __iter__(self) -> Iterator[StreamingPullRequest]:
        while (item := self._queue.get()) is not None:
            yield item


def test_acks_and_modacks_on_the_stream_are_honoured(pubsub: PubSubClients) -> None:
    """Acks and modacks sent inside the StreamingPull stream settle messages; heartbeats are fine."""
    topic, sub = _setup(pubsub)
    publish_all(pubsub.publisher, topic, [b"ack-me", b"nack-me"])
    first = StreamingPullRequest(subscription=sub, stream_ack_deadline_seconds=10)
    requests = _Requests(first)
    responses = pubsub.subscriber.streaming_pull(requests=iter(requests))
    received: list[Any] = []
    for response in responses:
        received.extend(response.received_messages)
        if len(received) >= 2:
            break
    by_data = {m.message.data: m.ack_id for m in received}
    requests.send(StreamingPullRequest())  # a heartbeat
    requests.send(
        StreamingPullRequest(
            ack_ids=[by_data[b"ack-me"]],
            modify_deadline_ack_ids=[by_data[b"nack-me"]],
            modify_deadline_seconds=[0],
        )
    )
    redelivered = next(iter(responses)).received_messages
    assert [m.message.data for m in redelivered] == [b"nack-me"]
    requests.send(StreamingPullRequest(ack_ids=[redelivered[0].ack_id]))
    requests.send(None)
    responses.cancel()
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []


def test_streaming_pull_on_a_missing_subscription_is_not_found(pubsub: PubSubClients) -> None:
    """The stream ends with NOT_FOUND when the subscription does not exist."""
    first = StreamingPullRequest(
        subscription=pubsub.subscription("missing"), stream_ack_deadline_seconds=10
    )
    with pytest.raises(exceptions.NotFound):
        for _ in pubsub.subscriber.streaming_pull(requests=iter([first])):
            pass


def test_deleting_a_subscription_ends_its_streams(pubsub: PubSubClients) -> None:
    """An open subscribe() future fails with NotFound once its subscription is deleted."""
    _, sub = _setup(pubsub)
    future = pubsub.subscriber.subscribe(sub, Collector())
    try:
        pubsub.subscriber.delete_subscription(subscription=sub)
        with pytest.raises(exceptions.NotFound):
            future.result(timeout=10)
    finally:
        future.cancel()
