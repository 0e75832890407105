"""Replay from time T: the topic's archive plus StartReplay to one subscription's rule.

StartReplay(EventSourceArn=archive, EventStartTime=T, EventEndTime=now,
Destination={bus, FilterArns=[rule]}) redelivers the archived events to that
rule alone; replayed envelopes carry a ``replay-name`` field. On AWS the
replay runs asynchronously and may take minutes; EventBridge timestamps have
whole-second precision on the wire, so events up to a second before T may
come back too.

moto replays synchronously but ignores both the time window and FilterArns
(every rule on the bus gets every archived event). `ReplayGate.admits`
applies what AWS documents on the consumer side, from the replay's own
description: an event outside the window, or a replay aimed at another rule,
is not delivered. On AWS this never drops anything AWS would have sent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws import mapping
from polybus.adapters.aws.errors import translate_errors
from polybus.adapters.aws.provisioning import Provisioner, Subscription
from polybus.core.errors import AdapterError


@dataclass(frozen=True)
class ReplayWindow:
    """Which rules a replay targets and the event times it covers."""

    rule_arns: frozenset[str]
    start: datetime
    end: datetime

    def admits(self, rule_arn: str, time: datetime | None) -> bool:
        """True when an event at `time`, delivered through `rule_arn`, belongs to this replay."""
        if self.rule_arns and rule_arn not in self.rule_arns:
            return False
        return time is None or self.start <= time <= self.end


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReplayGate:
    """Starts replays and decides whether a replayed delivery belongs to its replay."""

    def __init__(
        self,
        events_client: Any,
        provisioner: Provisioner,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._events = events_client
        self._provisioner = provisioner
        self._clock = clock
        self._windows: dict[str, ReplayWindow] = {}
        self._lock = threading.Lock()

    def start(self, subscription: Subscription, since: datetime) -> str | None:
        """Start replaying the topic's archive from `since` to the subscription; its name."""
        bus = self._provisioner.bus(subscription.topic)
        if bus.archive_arn is None:
            raise AdapterError(
                f"aws: topic {subscription.topic!r} has no archive (config archive = false)"
            )
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        now = self._clock()
        if since > now:
            return None  # nothing was published in the future
        name = mapping.replay_name(subscription.rule, uuid.uuid4().hex[:10])
        window = ReplayWindow(frozenset({subscription.rule_arn}), since, now)
        with self._lock:
            self._windows[name] = window
        with translate_errors(f"start replay {name}"):
            self._events.start_replay(
                ReplayName=name,
                Description=f"polybus replay of {subscription.topic} to {subscription.name}",
                EventSourceArn=bus.archive_arn,
                EventStartTime=since,
                EventEndTime=now,
                Destination={"Arn": bus.arn, "FilterArns": [subscription.rule_arn]},
            )
        return name

    def admits(
        self, subscription: Subscription, envelope: Mapping[str, Any], event: CloudEvent
    ) -> bool:
        """False for a replayed event that AWS would not have sent to this subscription."""
        name = envelope.get("replay-name")
        if not isinstance(name, str):
            return True
        window = self._windows.get(name) or self._describe(name)
        return window.admits(subscription.rule_arn, event.get_time())

    def _describe(self, name: str) -> ReplayWindow:
        with translate_errors(f"describe replay {name}"):
            found = self._events.describe_replay(ReplayName=name)
        destination = found.get("Destination", {})
        window = ReplayWindow(
            frozenset(destination.get("FilterArns") or ()),
            found["EventStartTime"],
            found["EventEndTime"],
        )
        with self._lock:
            self._windows[name] = window
        return window
