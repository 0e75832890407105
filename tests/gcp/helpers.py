"""Helpers for driving the emulator with the real client in tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions


@dataclass
class PubSubClients:
    """Real google-cloud-pubsub clients pointed at the emulator, plus name helpers."""

    publisher: Any
    subscriber: Any
    project: str
    suffix: str

    def topic(self, base: str) -> str:
        """A unique topic path for this test."""
        return f"projects/{self.project}/topics/{base}-{self.suffix}"

    def subscription(self, base: str) -> str:
        """A unique subscription path for this test."""
        return f"projects/{self.project}/subscriptions/{base}-{self.suffix}"


def pull_all(subscriber: Any, subscription: str, expected: int, timeout: float = 5.0) -> list[Any]:
    """Synchronous Pull until `expected` messages arrived or `timeout` passed."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            response = subscriber.pull(
                subscription=subscription,
                max_messages=expected - len(out),
                timeout=max(0.2, min(remaining, 2.0)),
            )
        except exceptions.DeadlineExceeded:
            continue
        out.extend(response.received_messages)
    return out


def publish_all(publisher: Any, topic: str, payloads: list[bytes], **attrs: str) -> list[str]:
    """Publish and wait for every message id."""
    futures = [publisher.publish(topic, data, **attrs) for data in payloads]
    return [f.result() for f in futures]


class Collector:
    """A streaming-pull callback that records messages and can wait for a count."""

    def __init__(self, on_message: Callable[[Any], None] | None = None) -> None:
        self.messages: list[Any] = []
        self._cond = threading.Condition()
        self._on_message = on_message or (lambda m: m.ack())

    def __call__(self, message: Any) -> None:
        self._on_message(message)
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Block until `count` messages arrived (or `timeout`); returns what arrived."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@contextlib.contextmanager
def streaming(subscriber: Any, subscription: str, callback: Any, **kwargs: Any) -> Iterator[Any]:
    """subscribe() for the block; cancel and wait on the future at the end (before client close)."""
    future = subscriber.subscribe(subscription, callback, **kwargs)
    try:
        yield future
    finally:
        future.cancel()
        with contextlib.suppress(Exception):
            future.result(timeout=10)
