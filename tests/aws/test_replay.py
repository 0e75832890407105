"""Replay from time T through the topic's archive and StartReplay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.core.contract import Adapter, SubscriptionSpec, SupportsReplay
from polybus.core.errors import AdapterError
from polybus.core.events import EventFactory


def _at(when: datetime, name: str) -> EventFactory:
    return EventFactory(id_factory=lambda: name, clock=lambda: when)


def _drain(adapter: Adapter, sub: str) -> list[str]:
    """Receive and ack everything waiting; the ids in arrival order."""
    ids: list[str] = []
    while batch := adapter.receive(sub, 10, 0.3):
        for delivery in batch:
            ids.append(delivery.event.get_id())
            delivery.ack()
    return ids


def test_aws_adapter_supports_replay(aws_adapter_factory: Callable[..., AwsAdapter]) -> None:
    """The aws adapter implements the SupportsReplay protocol."""
    assert isinstance(aws_adapter_factory(), SupportsReplay)


def test_replay_redelivers_only_events_since_t_and_only_to_that_subscription(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """Events at or after T come back to the replayed subscription; older ones and other subscriptions get nothing.

    moto replays the whole archive to every rule on the bus (it ignores the
    window and FilterArns); the adapter applies both as AWS documents them.
    """
    adapter = aws_adapter_factory()
    topic, sub, bystander = unique("ledger"), unique("sub"), unique("other")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.provision(SubscriptionSpec(bystander, topic))
    now = datetime.now(UTC)
    since = now - timedelta(minutes=30)
    old = _at(now - timedelta(hours=2), "old").new("com.example.entry", "/l", {"n": 1})
    new = _at(now - timedelta(minutes=5), "new").new("com.example.entry", "/l", {"n": 2})
    adapter.publish(topic, [old, new])
    assert sorted(_drain(adapter, sub)) == ["new", "old"]
    assert sorted(_drain(adapter, bystander)) == ["new", "old"]
    adapter.replay(sub, since)
    [replayed] = adapter.receive(sub, 10, 2.0)
    assert replayed.event.get_id() == "new"
    assert replayed.event.get_data() == {"n": 2}
    replayed.ack()
    assert _drain(adapter, sub) == []
    assert _drain(adapter, bystander) == []


def test_replay_window_is_honoured_by_another_adapter_instance(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """A consumer that did not start the replay reads its window from DescribeReplay."""
    starter, consumer = aws_adapter_factory(), aws_adapter_factory()
    topic, sub = unique("ledger"), unique("sub")
    starter.provision(SubscriptionSpec(sub, topic))
    now = datetime.now(UTC)
    old = _at(now - timedelta(days=1), "old").new("com.example.entry", "/l")
    new = _at(now - timedelta(seconds=30), "new").new("com.example.entry", "/l")
    starter.publish(topic, [old, new])
    _drain(consumer, sub)
    starter.replay(sub, now - timedelta(hours=1))
    assert _drain(consumer, sub) == ["new"]


def test_replay_from_the_future_does_nothing(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """Replaying from a time after now starts no replay and delivers nothing."""
    adapter = aws_adapter_factory()
    topic, sub = unique("ledger"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [EventFactory().new("com.example.entry", "/l")])
    _drain(adapter, sub)
    adapter.replay(sub, datetime.now(UTC) + timedelta(hours=1))
    assert _drain(adapter, sub) == []


def test_replay_without_archive_is_an_adapter_error(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """With `archive = false` there is nothing to replay from: AdapterError says so."""
    adapter = aws_adapter_factory(archive=False)
    topic, sub = unique("ledger"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    with pytest.raises(AdapterError, match="no archive"):
        adapter.replay(sub, datetime.now(UTC) - timedelta(hours=1))
