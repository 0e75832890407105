"""Pub/Sub snapshots for the emulator: a subscription's acknowledgment state, kept to seek back to.

A snapshot holds the messages unacknowledged in its subscription when it was
taken, and every message published to the topic afterwards, until it expires
(seven days after its oldest message, as Pub/Sub computes ``expire_time``) or
is deleted. Seeking any subscription of the same topic to it makes exactly
those messages (that pass the subscription's filter) available again and
treats everything else as acknowledged.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.pubsub_v1.types import pubsub as types

from polybus.adapters.gcp.emulator.errors import RpcError

SnapshotMessage = types.Snapshot.pb()
MAX_AGE = 7 * 24 * 3600.0
_SNAPSHOT_NAME = re.compile(r"projects/([^/]+)/snapshots/([A-Za-z][A-Za-z0-9\-_.~+%]{2,254})")

Retained = tuple[Any, int, float]  # message, byte size, publish time (wall clock)


@dataclass
class SnapshotState:
    """One snapshot: its resource, and the messages it retains in publish order."""

    config: Any  # the google.pubsub.v1.Snapshot protobuf
    topic: str
    messages: list[Retained] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def retain(self, published: list[Retained]) -> None:
        """Keep messages published to the topic after the snapshot was taken."""
        with self.lock:
            self.messages.extend(published)

    def retained(self, now: float) -> list[Retained]:
        """The messages still within Pub/Sub's retention, oldest first."""
        with self.lock:
            return [m for m in self.messages if now - m[2] < MAX_AGE]


def check_snapshot_name(name: str) -> None:
    """INVALID_ARGUMENT for a malformed snapshot path (as Pub/Sub answers)."""
    match = _SNAPSHOT_NAME.fullmatch(name)
    if match is None or match.group(2).startswith("goog"):
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid [snapshots] name: ({name})")


def new_snapshot(request: Any, topic: str, unacked: list[Retained], now: float) -> SnapshotState:
    """The snapshot `request` asks for, over the subscription's unacknowledged messages."""
    config = SnapshotMessage(name=request.name, topic=topic)
    config.labels.update(request.labels)
    oldest = min((m[2] for m in unacked), default=now)
    expire = oldest + MAX_AGE
    config.expire_time.seconds = int(expire)
    config.expire_time.nanos = int((expire - int(expire)) * 1e9)
    return SnapshotState(config, topic, list(unacked))
