"""The push receiver over real HTTP: caller checks, size limits, malformed requests, no thread per connection."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from polybus.adapters.azure.push import MAX_BODY, TOKEN_HEADER, Inbox, WebhookReceiver
from polybus.core.events import new_event
from polybus.core.formats import to_dict


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver with one subscription ``s`` whose requests are held at most 2 s."""
    made = WebhookReceiver(secret="test-secret")
    made.inboxes["s"] = Inbox(settle_timeout=2.0)
    yield made
    made.close()


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "aeg-event-type": "Notification",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes; the first line of the answer (b"" when none came)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        try:
            answer = conn.recv(4096)
        except TimeoutError:
            return b""
    return answer.split(b"\r\n", 1)[0]


def test_forged_posts_get_401_and_never_reach_the_inbox(receiver: WebhookReceiver) -> None:
    """No token, a wrong token, another subscription's token: 401 each, nothing handed out."""
    event = json.dumps(to_dict(new_event("com.example.forged", "/f"))).encode()
    plain = f"{receiver.base_url}/polybus/s"
    assert _post(plain, event) == 401
    assert _post(plain + "?token=guess", event) == 401
    assert _post(plain + "?token=" + receiver.token_for("other"), event) == 401
    assert _post(plain, event, {TOKEN_HEADER: "guess"}) == 401
    handshake = [
        {
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "c"},
        }
    ]
    assert (
        _post(plain, json.dumps(handshake).encode(), {"aeg-event-type": "SubscriptionValidation"})
        == 401
    )
    assert receiver.inboxes["s"].take(10, 0.2) == []


def test_token_in_the_url_or_the_header_is_accepted(receiver: WebhookReceiver) -> None:
    """The subscription URL's token, or the same token as X-Polybus-Token, reaches the inbox."""
    inbox = receiver.inboxes["s"]
    results: list[int] = []

    def consume() -> None:
        for _ in range(2):
            for delivery in inbox.take(1, 5.0):
                delivery.ack()

    consumer = threading.Thread(target=consume)
    consumer.start()
    event = json.dumps(to_dict(new_event("com.example.ok", "/ok"))).encode()
    results.append(_post(receiver.url_for("s"), event))
    headers = {TOKEN_HEADER: receiver.token_for("s")}
    results.append(_post(f"{receiver.base_url}/polybus/s", event, headers))
    consumer.join()
    assert results == [200, 200]


def test_validation_handshake_is_echoed_only_with_the_token(receiver: WebhookReceiver) -> None:
    """The SubscriptionValidationEvent is answered with its code when the token is right."""
    handshake = [
        {
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "abc"},
        }
    ]
    request = urllib.request.Request(
        receiver.url_for("s"),
        data=json.dumps(handshake).encode(),
        method="POST",
        headers={"aeg-event-type": "SubscriptionValidation"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read()) == {"validationResponse": "abc"}


def test_bodies_over_event_grids_limit_get_413_unread(receiver: WebhookReceiver) -> None:
    """A declared body over MAX_BODY is refused with 413 before it is read; a chunked one too."""
    path = receiver.url_for("s").split("://", 1)[1].split("/", 1)[1]
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"aeg-event-type: Notification\r\n"
    ).encode()
    declared = head + f"Content-Length: {200 * 1024 * 1024}\r\n\r\n".encode() + b"[" * 100
    assert _raw(receiver.port, declared).startswith(b"HTTP/1.1 413")
    chunk = b"x" * (MAX_BODY + 10)
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(chunk):x}\r\n".encode() + chunk
    assert _raw(receiver.port, chunked).startswith(b"HTTP/1.1 413")


def test_every_malformed_request_is_answered(receiver: WebhookReceiver) -> None:
    """Ten malformed requests (bad JSON, nesting, encoding, headers, methods, HTTP) all get a 4xx."""
    path = "/" + receiver.url_for("s").split("://", 1)[1].split("/", 1)[1]

    def post(body: bytes, extra: str = "aeg-event-type: Notification\r\n") -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode() + body

    requests = [
        post(b"{not json"),
        post(b"[" * 5000 + b"]" * 5000),
        post(b'{"id":"\xff\xfe"}'),
        post(b"[]"),
        post(b'{"specversion":"1.0"}'),
        post(b"{}", "aeg-event-type: Notification\r\naeg-delivery-count: many\r\n"),
        post(b"{}", "aeg-event-type: Surprise\r\n"),
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        f"OPTIONS {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        b"BLAH\r\n\r\n",
    ]
    firsts = [_raw(receiver.port, request) for request in requests]
    statuses = [int(first.split(b" ")[1]) for first in firsts if first.startswith(b"HTTP/1.")]
    assert len(statuses) == len(requests), firsts
    assert all(400 <= status < 500 for status in statuses), statuses


def test_idle_connections_hold_no_thread_each(receiver: WebhookReceiver) -> None:
    """200 idle connections and 20 requests waiting for a consumer add no threads."""
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", receiver.port), timeout=10) for _ in range(200)]
    event = json.dumps(to_dict(new_event("com.example.wait", "/w"))).encode()
    waiting = [
        threading.Thread(target=_post, args=(receiver.url_for("s"), event)) for _ in range(20)
    ]
    try:
        for sender in waiting:
            sender.start()
        deadline = time.monotonic() + 5
        while len(receiver.inboxes["s"]._ready) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert threading.active_count() - len(waiting) <= before
        for delivery in receiver.inboxes["s"].take(20, 1.0):
            delivery.ack()
    finally:
        for sender in waiting:
            sender.join()
        for conn in idle:
            conn.close()


def test_a_poison_in_a_batch_is_dead_lettered_and_the_rest_handled(
    receiver: WebhookReceiver,
) -> None:
    """A batch of two good events and one bad time: the good ones are handed out, the answer is 400."""
    good = [to_dict(new_event("com.example.b", "/b", {"n": i})) for i in range(2)]
    bad = {**good[0], "id": "bad", "time": "not-a-time"}
    status: list[int] = []
    sender = threading.Thread(
        target=lambda: status.append(
            _post(receiver.url_for("s"), json.dumps([good[0], bad, good[1]]).encode())
        )
    )
    sender.start()
    handed: list[str] = []
    deadline = time.monotonic() + 5
    while len(handed) < 2 and time.monotonic() < deadline:
        for delivery in receiver.inboxes["s"].take(10, 0.2):
            handed.append(delivery.event.get_id())
            delivery.ack()
    sender.join()
    assert sorted(handed) == sorted(g["id"] for g in good)
    assert status == [400]  # Event Grid dead-letters the request; acked members are remembered
    assert receiver.inboxes["s"].was_acked(("/b", good[0]["id"]))
