"""The aws adapter under faults: lease renewal, poison isolation, recovery, bounded close."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import boto3
import pytest

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.adapters.aws.config import parse_config
from polybus.adapters.aws.delivery import UNDECODABLE_TYPE
from polybus.adapters.aws.emulator import AwsEmulator, start
from polybus.adapters.aws.mapping import bus_name, queue_name
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError
from polybus.core.events import new_event
from tests.contract.helpers import receive_n

FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)
BAD_TIME = {
    "specversion": "1.0",
    "id": "bad-time",
    "source": "/raw",
    "type": "t.x",
    "time": "not-a-time",
}


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"topic-{suffix}", f"sub-{suffix}"


def test_extend_keeps_a_delivery_invisible_past_its_deadline(
    aws_adapter_factory: Callable[..., AwsAdapter],
) -> None:
    """extend() is ChangeMessageVisibility: past the 1 s deadline nobody else receives it."""
    adapter = aws_adapter_factory(wait_time=0)
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=1.0)))
    adapter.publish(topic, [new_event("com.example.e", "/e")])
    [delivery] = receive_n(adapter, sub, 1)
    delivery.extend(10)  # type: ignore[attr-defined]
    time.sleep(1.5)
    assert receive_n(aws_adapter_factory(wait_time=0), sub, 1, timeout=0.5) == []
    delivery.ack()
    with pytest.raises(AdapterError):
        delivery.extend(10)  # type: ignore[attr-defined]


def test_poison_messages_are_dead_lettered_alone_and_read_back_raw(
    aws_adapter_factory: Callable[..., AwsAdapter], aws_env: AwsEmulator
) -> None:
    """A bad time (PutEvents), deep nesting and garbage (SendMessage): dead-lettered, others flow."""
    adapter = aws_adapter_factory(wait_time=0)
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(retry=FAST)))
    settings = aws_env.settings()
    events = boto3.client(
        "events", region_name=settings["region"], endpoint_url=settings["endpoint_url"]
    )
    sqs = boto3.client("sqs", region_name=settings["region"], endpoint_url=settings["endpoint_url"])
    good = [new_event("com.example.ok", "/ok", {"n": i}) for i in range(3)]
    adapter.publish(topic, good[:1])
    events.put_events(
        Entries=[
            {
                "Source": "/raw",
                "DetailType": "t.x",
                "Detail": json.dumps(BAD_TIME),
                "EventBusName": bus_name("polybus-", topic),
            }
        ]
    )
    url = sqs.get_queue_url(QueueName=queue_name("polybus-", sub))["QueueUrl"]
    raws = {"[" * 2000 + "]" * 2000, "garbage"}
    for body in raws:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    adapter.publish(topic, good[1:])
    delivered = receive_n(adapter, sub, 3)
    assert sorted(d.event.get_id() for d in delivered) == sorted(e.get_id() for e in good)
    for delivery in delivered:
        delivery.ack()
    dead = receive_n(adapter, sub, 3, dead=True)
    assert len(dead) == 3
    for delivery in dead:
        assert delivery.event.get_type() == UNDECODABLE_TYPE
        assert delivery.reason.startswith("undecodable")  # type: ignore[attr-defined]
        assert delivery.event.get_extension("polybusreason") == delivery.reason  # type: ignore[attr-defined]
    bodies = {d.raw.decode() for d in dead}  # type: ignore[attr-defined]
    assert raws <= bodies and any("not-a-time" in b for b in bodies)
    for delivery in dead:
        delivery.ack()
    assert receive_n(adapter, sub, 1, timeout=0.5, dead=True) == []


@pytest.fixture
def own_moto(aws_env: AwsEmulator) -> Iterator[list[AwsEmulator]]:
    """A moto server of this test only (a list: the test replaces it when it restarts it)."""
    running = [start()]
    yield running
    running[-1].stop()


def test_consuming_resumes_after_moto_restarts(own_moto: list[AwsEmulator]) -> None:
    """After a restart with empty state, receive re-creates bus, rule and queues; events flow."""
    moto = own_moto[0]
    adapter = AwsAdapter(parse_config({**moto.settings(), "wait_time": 0}))
    topic, sub = _names()
    try:
        adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(retry=FAST)))
        adapter.publish(topic, [new_event("com.example.before", "/r")])
        [before] = receive_n(adapter, sub, 1)
        before.ack()
        port = int(moto.endpoint.rsplit(":", 1)[1])
        moto.stop()
        own_moto.append(start("127.0.0.1", port))
        adapter.receive(sub, 1, 0.2)  # the queue is gone: provisioned again from its spec
        adapter.publish(topic, [new_event("com.example.after", "/r")])
        [after] = receive_n(adapter, sub, 1)
        assert after.event.get_type() == "com.example.after"
        after.ack()
    finally:
        adapter.close()


def test_close_is_bounded_when_the_endpoint_is_gone(own_moto: list[AwsEmulator]) -> None:
    """With deliveries outstanding and moto stopped, close() still returns within its bound."""
    moto = own_moto[0]
    adapter = AwsAdapter(parse_config({**moto.settings(), "wait_time": 0}))
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("com.example.c", "/c", {"n": i}) for i in range(3)])
    assert len(receive_n(adapter, sub, 3)) == 3
    moto.stop()
    closing = threading.Thread(target=adapter.close, daemon=True)
    closing.start()
    closing.join(15)
    assert not closing.is_alive(), "close() hung on an unreachable endpoint"
