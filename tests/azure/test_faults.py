"""Faults on the azure pull path: poison isolation, lock renewal, emulator restart, bounded close."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polybus.adapters.azure.adapter import AzureAdapter
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.emulator.server import start_emulator
from polybus.adapters.azure.mapping import REASON_EXTENSION, UNDECODABLE_TYPE, native_name
from polybus.adapters.azure.plugin import make_adapter
from polybus.core.contract import Delivery, DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, EventValidationError
from polybus.core.events import new_event

BAD_TIME = {
    "specversion": "1.0",
    "id": "poison-time",
    "source": "/raw-publisher",
    "type": "com.example.poison",
    "time": "not-a-time",
    "data": {"n": -1},
}
# A JSON escape of a lone surrogate: valid JSON, not valid Unicode (it cannot be UTF-8 encoded).
BAD_TEXT = b'{"specversion":"1.0","id":"poison-text","source":"/raw","type":"t","data":"\\udc80"}'


def _adapter(emulator: EventGridEmulator, **extra: Any) -> AzureAdapter:
    adapter = make_adapter(
        {"endpoint": emulator.endpoint, "key": emulator.key, "admin": True, **extra}
    )
    assert isinstance(adapter, AzureAdapter)
    return adapter


@pytest.fixture
def adapter(azure_emulator: EventGridEmulator) -> Iterator[AzureAdapter]:
    """A pull adapter on the session emulator (closed at teardown)."""
    made = _adapter(azure_emulator)
    yield made
    made.close()


def _raw_publish(emulator: EventGridEmulator, topic: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"{emulator.endpoint}/topics/{native_name(topic)}:publish?api-version=2024-06-01",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/cloudevents-batch+json; charset=utf-8",
            "Authorization": f"SharedAccessKey {emulator.key}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _drain(read: Callable[[], list[Delivery]], want: int, seconds: float = 10) -> list[Delivery]:
    out: list[Delivery] = []
    deadline = time.monotonic() + seconds
    while len(out) < want and time.monotonic() < deadline:
        out.extend(read())
    return out


def test_poison_from_another_publisher_is_dead_lettered_alone_with_reason_and_bytes(
    adapter: AzureAdapter, azure_emulator: EventGridEmulator, name: Callable[[str], str]
) -> None:
    """A bad time and a lone surrogate among 50 good events: 50 handled once, 2 dead letters kept."""
    topic, sub = name("poison"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    good = [new_event("com.example.good", "/good", {"n": i}) for i in range(50)]
    adapter.publish(topic, good[:25])
    _raw_publish(azure_emulator, topic, json.dumps([BAD_TIME]).encode())
    _raw_publish(azure_emulator, topic, b"[" + BAD_TEXT + b"]")
    adapter.publish(topic, good[25:])
    handled = _drain(lambda: adapter.receive(sub, 100, 0.2), 50)
    for delivery in handled:
        delivery.ack()
    assert sorted(d.event.get_id() for d in handled) == sorted(e.get_id() for e in good)
    assert {d.attempt for d in handled} == {1}
    assert adapter.receive(sub, 100, 0.3) == []
    dead = _drain(lambda: list(adapter.receive_dead_letters(sub, 10, 0.2)), 2)
    by_id = {d.event.get_id(): d.event for d in dead}
    assert set(by_id) == {"poison-time", "poison-text"}
    for event in by_id.values():
        assert event.get_type() == UNDECODABLE_TYPE
        assert event.get_attributes()[REASON_EXTENSION]
    assert "RFC 3339" in by_id["poison-time"].get_attributes()[REASON_EXTENSION]
    assert json.loads(by_id["poison-time"].get_data()) == BAD_TIME
    sent = json.loads(by_id["poison-text"].get_data())  # as Event Grid sent it (re-serialised)
    assert sent == json.loads(BAD_TEXT)
    for delivery in dead:
        delivery.ack()
    assert adapter.receive_dead_letters(sub, 10, 0.3) == []


def test_publish_refuses_what_receivers_would_dead_letter(
    adapter: AzureAdapter, name: Callable[[str], str]
) -> None:
    """Data nested past MAX_NESTING, or holding a lone surrogate, is refused before the network."""
    deep: Any = []
    for _ in range(150):
        deep = [deep]
    for data in (deep, {"text": "\udc80"}):
        with pytest.raises(EventValidationError):
            adapter.publish(name("refuse"), [new_event("com.example.bad", "/bad", data)])


def test_extend_renews_the_lock_past_the_lock_duration(
    adapter: AzureAdapter, name: Callable[[str], str]
) -> None:
    """With a 1 s lock renewed every 0.3 s the event stays invisible for 2.5 s, then is acked once."""
    topic, sub = name("renew"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=1.0)))
    adapter.publish(topic, [new_event("com.example.slow", "/slow")])
    [delivery] = _drain(lambda: adapter.receive(sub, 1, 0.2), 1)
    assert hasattr(delivery, "extend")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        delivery.extend(1.0)  # type: ignore[attr-defined]
        assert adapter.receive(sub, 1, 0.3) == []
    delivery.ack()
    delivery.extend(1.0)  # type: ignore[attr-defined]  # settled: nothing to renew
    adapter.flush_acks()
    assert adapter.receive(sub, 1, 1.2) == []


def test_a_lost_lock_cannot_be_renewed_nor_past_an_hour(
    adapter: AzureAdapter, azure_emulator: EventGridEmulator, name: Callable[[str], str]
) -> None:
    """renewLock fails for an expired lock and once the event has been held for the maximum hold."""
    topic, sub = name("lost"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=0.2)))
    adapter.publish(topic, [new_event("com.example.lost", "/lost")])
    [first] = _drain(lambda: adapter.receive(sub, 1, 0.2), 1)
    time.sleep(0.4)  # the lock expires
    with pytest.raises(AdapterError, match="TokenLost"):
        first.extend(0.2)  # type: ignore[attr-defined]
    [second] = _drain(lambda: adapter.receive(sub, 1, 0.5), 1)
    assert second.attempt == 2
    old = azure_emulator.namespace.max_lock_hold
    azure_emulator.run(lambda: setattr(azure_emulator.namespace, "max_lock_hold", 0.0))
    try:
        with pytest.raises(AdapterError, match="hour"):
            second.extend(0.2)  # type: ignore[attr-defined]
    finally:
        azure_emulator.run(lambda: setattr(azure_emulator.namespace, "max_lock_hold", old))


def test_publish_and_receive_resume_after_the_emulator_restarts(
    name: Callable[[str], str],
) -> None:
    """A restarted (empty) emulator on the same port: publish, re-subscribe and receive resume."""
    emulator = start_emulator()
    port, key = emulator.port, emulator.key
    adapter = _adapter(emulator, retries=0)
    topic, sub = name("restart"), name("sub")
    spec = SubscriptionSpec(sub, topic)
    try:
        adapter.provision(spec)
        adapter.publish(topic, [new_event("com.example.before", "/r")])
        [before] = _drain(lambda: adapter.receive(sub, 1, 0.2), 1)
        before.ack()
        adapter.flush_acks()
        emulator.stop()
        emulator = start_emulator("127.0.0.1", port, key)
        published = _eventually(lambda: adapter.publish(topic, [new_event("com.example.a", "/r")]))
        assert published
        received = _eventually(lambda: adapter.receive(sub, 10, 0.2))
        assert received == []  # the subscription was re-created empty: the event before it is gone
        adapter.provision(spec)  # re-subscribing works too
        adapter.publish(topic, [new_event("com.example.after", "/r")])
        [after] = _drain(lambda: adapter.receive(sub, 1, 0.2), 1)
        assert after.event.get_type() == "com.example.after"
        after.ack()
    finally:
        adapter.close()
        emulator.stop()


def _eventually(call: Callable[[], Any], tries: int = 20) -> Any:
    """The first result of `call` that does not raise AdapterError (PublishError included)."""
    for _ in range(tries):
        try:
            result = call()
        except Exception as exc:  # a stale pooled connection, a 404 being repaired
            last = exc
            time.sleep(0.1)
            continue
        return True if result is None else result
    raise AssertionError(f"never recovered: {last}")


class _Proxy:
    """A TCP proxy in front of the emulator that can turn unresponsive (it swallows everything)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if not self.frozen.is_set():
                with contextlib.suppress(OSError):
                    dst.sendall(data)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_close_returns_within_its_bound_against_an_unresponsive_endpoint(
    azure_emulator: EventGridEmulator, name: Callable[[str], str]
) -> None:
    """Held locks and queued acks, then the endpoint stops answering: close still returns."""
    proxy = _Proxy(azure_emulator.port)
    adapter = make_adapter(
        {
            "endpoint": f"http://127.0.0.1:{proxy.port}",
            "key": azure_emulator.key,
            "admin": True,
            "close_timeout": 1.0,
            "ack_flush_interval": 60,
        }
    )
    try:
        topic, sub = name("close"), name("sub")
        adapter.provision(SubscriptionSpec(sub, topic))
        adapter.publish(topic, [new_event("com.example.c", "/c", {"n": i}) for i in range(3)])
        held = _drain(lambda: adapter.receive(sub, 3, 0.2), 3)
        held[0].ack()  # queued, not flushed
        proxy.frozen.set()
        closer = threading.Thread(target=adapter.close, daemon=True)
        closer.start()
        closer.join(timeout=20)  # the SDK's own retries and timeouts would take minutes
        assert not closer.is_alive()
    finally:
        proxy.close()
