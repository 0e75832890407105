"""The gcp adapter under faults: leases only what is asked, poison isolation, recovery, bounded close."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polybus.adapters.gcp.adapter import GcpAdapter
from polybus.adapters.gcp.config import parse_config
from polybus.adapters.gcp.delivery import UNDECODABLE_TYPE
from polybus.adapters.gcp.emulator import GcpEmulator, start
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError
from polybus.core.events import new_event
from tests.contract.helpers import receive_n
from tests.fixtures.gcp import PROJECT
from tests.gcp.helpers import PubSubClients

FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)
POISONS: dict[str, tuple[bytes, dict[str, str]]] = {
    "deep": (b"[" * 2000 + b"]" * 2000, {"content-type": "application/json"}),
    "bad-time": (b"{}", {"content-type": "application/json", "ce-time": "not-a-time"}),
    "bad-utf8": (b"\xff\xfe not utf-8", {"content-type": "application/cloudevents+json"}),
    "garbage": (b"garbage", {"origin": "someone else"}),
}
BINARY = {"ce-specversion": "1.0", "ce-source": "/raw", "ce-type": "com.example.raw"}


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"topic-{suffix}", f"sub-{suffix}"


def test_receive_leases_only_what_it_is_asked_for(gcp_adapter_factory: Callable[[], Any]) -> None:
    """receive(2) leases 2 messages: the other 8 stay available to any other consumer at once."""
    first, second = gcp_adapter_factory(), gcp_adapter_factory()
    topic, sub = _names()
    first.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(retry=FAST)))
    events = [new_event("com.example.n", "/n", {"n": i}) for i in range(10)]
    first.publish(topic, events)
    held = receive_n(first, sub, 2)
    rest = receive_n(second, sub, 8)
    assert len(held) == 2 and len(rest) == 8
    got = {d.event.get_id() for d in [*held, *rest]}
    assert got == {e.get_id() for e in events}
    for delivery in [*held, *rest]:
        delivery.ack()


def test_extend_renews_a_lease_and_refuses_a_settled_delivery(
    gcp_adapter_factory: Callable[[], Any],
) -> None:
    """extend() is modifyAckDeadline on a held delivery; after ack it raises AdapterError."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("com.example.e", "/e")])
    [delivery] = receive_n(adapter, sub, 1)
    delivery.extend(30)
    assert receive_n(gcp_adapter_factory(), sub, 1, timeout=0.5) == []
    delivery.ack()
    with pytest.raises(AdapterError):
        delivery.extend(30)


def test_poison_messages_are_dead_lettered_alone_and_read_back_raw(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """Deep nesting, a bad time, invalid UTF-8, garbage: each dead-lettered, the good ones flow."""
    adapter = gcp_adapter_factory()
    topic, sub = _names()
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(retry=FAST)))
    path = f"projects/{PROJECT}/topics/{topic}"
    good = [new_event("com.example.ok", "/ok", {"n": i}) for i in range(3)]
    adapter.publish(topic, good[:1])
    for kind, (data, attributes) in POISONS.items():
        extra = BINARY if kind in ("deep", "bad-time") else {}
        pubsub.publisher.publish(path, data, **{**extra, "ce-id": kind, **attributes}).result()
    adapter.publish(topic, good[1:])
    delivered = receive_n(adapter, sub, 3)
    assert sorted(d.event.get_id() for d in delivered) == sorted(e.get_id() for e in good)
    for delivery in delivered:
        delivery.ack()
    dead = receive_n(adapter, sub, len(POISONS), dead=True)
    assert len(dead) == len(POISONS)
    by_id = {d.event.get_id(): d for d in dead}
    for delivery in dead:
        assert delivery.event.get_type() == UNDECODABLE_TYPE
        assert delivery.reason.startswith("not a CloudEvent")  # type: ignore[attr-defined]
        assert delivery.event.get_extension("polybusreason") == delivery.reason  # type: ignore[attr-defined]
        delivery.ack()
    raw = {d.raw for d in dead}  # type: ignore[attr-defined]
    assert raw == {data for data, _ in POISONS.values()}
    assert (
        "nested too deeply" in by_id[next(i for i in by_id if by_id[i].raw.startswith(b"["))].reason
    )  # type: ignore[attr-defined]


@pytest.fixture
def own_emulator() -> Iterator[list[GcpEmulator]]:
    """An emulator of this test only (a list: the test replaces it when it restarts it)."""
    running = [start()]
    yield running
    running[-1].stop()


def test_consuming_resumes_after_the_emulator_restarts(own_emulator: list[GcpEmulator]) -> None:
    """After a restart with empty state the adapter re-creates its subscription and consumes again."""
    emulator = own_emulator[0]
    adapter = GcpAdapter(parse_config({**emulator.settings(), "project": PROJECT}))
    topic, sub = _names()
    try:
        adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(retry=FAST)))
        adapter.publish(topic, [new_event("com.example.before", "/r")])
        [before] = receive_n(adapter, sub, 1)
        before.ack()
        emulator.stop()
        own_emulator.append(start(emulator.host, emulator.port))
        deadline = time.monotonic() + 10.0
        got: list[Any] = []
        while not got and time.monotonic() < deadline:
            try:
                adapter.receive(sub, 1, 0.2)  # re-creates the subscription once reachable
                adapter.publish(topic, [new_event("com.example.after", "/r")])
                got = receive_n(adapter, sub, 1, timeout=1.0)
            except AdapterError:
                time.sleep(0.2)
        assert got and got[0].event.get_type() == "com.example.after"
        got[0].ack()
    finally:
        adapter.close()


def test_close_is_bounded_against_an_unresponsive_endpoint() -> None:
    """A server that accepts connections and never answers cannot hold close() past its bound."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    host, port = silent.getsockname()
    adapter = GcpAdapter(parse_config({"project": PROJECT, "emulator_host": f"{host}:{port}"}))
    stuck = threading.Thread(
        target=lambda: _swallow(lambda: adapter.publish("t", [new_event("a.b", "/c")])),
        daemon=True,
    )
    stuck.start()
    time.sleep(0.5)  # the publisher now has a batch in flight to nowhere
    closing = threading.Thread(target=adapter.close, daemon=True)
    closing.start()
    closing.join(15)
    assert not closing.is_alive(), "close() hung on an unresponsive endpoint"
    silent.close()


def _swallow(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception as exc:  # the publish fails one way or another: not what this test checks
        json.dumps(str(exc))
