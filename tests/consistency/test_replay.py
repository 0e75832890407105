"""Replay everywhere: from the event journal on azure and the local memory bus, natively on aws and gcp."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters import available_adapters, plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import REPLAY_EXTENSION, Bus
from polybus.core.consistency.journal import Journal, JournalPlugin
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.errors import UnsupportedError
from polybus.core.events import new_event

# provider id -> (adapter factory fixture, provider name, replay source, replay expected from the journal)
CASES: dict[str, tuple[str | None, str, str]] = {
    "local-memory-journal": (None, "local", "journal"),
    "azure-journal": ("azure_adapter_factory", "azure", "auto"),
    "aws-native": ("aws_adapter_factory", "aws", "auto"),
    "gcp-native": ("gcp_adapter_factory", "gcp", "auto"),
}


def _drain_until(bus: Bus, done: Callable[[], bool], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        for name in list(bus.subscriptions):
            bus.poll(name, timeout=0.2)


@pytest.fixture(params=list(CASES), ids=list(CASES))
def replay_case(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A Bus on one provider with a journal plugin on its hooks, and how it should replay."""
    fixture, provider, source = CASES[request.param]
    adapter = MemoryBus() if fixture is None else request.getfixturevalue(fixture)()
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    pm = plugin_manager([JournalPlugin(journal)])
    capabilities = available_adapters(pm)[provider].info.capabilities
    bus = Bus(adapter, hooks=pm.hook, capabilities=capabilities)
    yield bus, journal, source, request.param
    journal.close()
    if fixture is None:
        adapter.close()


def test_replay_reaches_only_the_named_subscription(replay_case: Any) -> None:
    """A replay redelivers the topic's events to the named subscription only, and the counts add up."""
    bus, journal, source, case = replay_case
    suffix = uuid.uuid4().hex[:8]
    topic, target, other = f"replayed-{suffix}", f"target-{suffix}", f"other-{suffix}"
    got: dict[str, list[CloudEvent]] = {target: [], other: []}
    bus.subscribe(target, got[target].append, topic=topic)
    bus.subscribe(other, got[other].append, topic=topic)
    since = datetime.now(UTC) - timedelta(seconds=5)
    events = [new_event("com.example.replayed", "/r", {"n": i}) for i in range(3)]
    bus.publish(events, topic=topic)
    _drain_until(bus, lambda: len(got[target]) >= 3 and len(got[other]) >= 3)
    assert journal.count(topic) == 3
    replayed = bus.replay(target, since, source=source)
    from_journal = case.endswith("journal")
    assert replayed == (3 if from_journal else None)
    _drain_until(bus, lambda: len(got[target]) >= 6 and bus.subscriptions[other].stats.filtered >= (3 if from_journal else 0))
    ids = sorted(e.get_id() for e in events)
    assert sorted(e.get_id() for e in got[target]) == sorted(ids * 2)
    assert sorted(e.get_id() for e in got[other]) == ids
    stats = bus.subscriptions[other].stats
    assert stats.filtered == (3 if from_journal else 0)
    assert stats.delivered == stats.acked + stats.retried + stats.dead_lettered + stats.filtered
    if from_journal:
        assert {e.get_extension(REPLAY_EXTENSION) for e in got[target][3:]} == {target}
        assert journal.count(topic) == 3  # replays are not journaled again


def test_azure_without_a_journal_says_how_to_enable_it(azure_adapter_factory: Callable[[], Any]) -> None:
    """Without a journal, replay on azure is refused and the message names the [journal] table."""
    pm = plugin_manager()
    bus = Bus(azure_adapter_factory(), hooks=pm.hook, capabilities=available_adapters(pm)["azure"].info.capabilities)
    with pytest.raises(UnsupportedError, match=r"\[journal\]"):
        bus.replay("nobody", datetime.now(UTC))


def test_explicit_journal_on_the_bus_is_used(tmp_path: Path) -> None:
    """`bus.journal` (an outbox or journal) serves a journal replay without any plugin."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}")
    journal.record([new_event("t", "/s", {"n": 1}, id="one")], DEFAULT_TOPIC)
    bus = Bus(MemoryBus())
    seen: list[CloudEvent] = []
    bus.subscribe("s", seen.append)
    bus.journal = journal
    assert bus.replay("s", datetime.now(UTC) - timedelta(minutes=1), source="journal") == 1
    bus.drain(idle=0.05)
    journal.close()
    assert [e.get_id() for e in seen] == ["one"]


def test_closing_the_bus_releases_the_journal_connections(tmp_path: Path) -> None:
    """Bus.close disposes the journal's pooled connections; the journal still works after."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}")
    bus = Bus(MemoryBus())
    bus.journal = journal
    journal.record([new_event("t", "/s", {"n": 1}, id="one")], DEFAULT_TOPIC)
    assert journal.engine.pool.checkedin() >= 1  # a pooled connection is held open
    bus.close()
    assert journal.engine.pool.checkedin() == 0
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert [e.get_id() for e in journal.replay_events(DEFAULT_TOPIC, since)] == ["one"]
    journal.close()
