"""The event journal: every published event recorded through the after-publish hook, with retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import REPLAY_EXTENSION, Bus
from polybus.core.config import parse_config
from polybus.core.consistency.journal import (
    Journal,
    JournalPlugin,
    connect_with_journal,
    install_journal,
    parse_journal,
)
from polybus.core.errors import ConfigError
from polybus.core.events import new_event


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def test_every_bus_publish_is_recorded_in_order(database_url: str) -> None:
    """Batches a Bus published are journaled with their topic, and read back since a time in order."""
    journal = Journal(database_url)
    pm = plugin_manager([JournalPlugin(journal)])
    bus = Bus(MemoryBus(), hooks=pm.hook)
    events = [new_event("t", "/s", {"n": i}, id=f"e{i}") for i in range(4)]
    bus.publish(events[:3], topic="a")
    bus.publish(events[3], topic="b")
    since = datetime.now(UTC) - timedelta(minutes=1)
    assert [e.get_id() for e in journal.replay_events("a", since)] == ["e0", "e1", "e2"]
    assert [e.get_id() for e in journal.replay_events("b", since)] == ["e3"]
    assert journal.replay_events("a", datetime.now(UTC) + timedelta(minutes=1)) == []
    journal.close()


def test_replayed_events_are_not_recorded_again(tmp_path: Path) -> None:
    """Events marked as replays are left out of the journal."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}")
    marked = new_event("t", "/s", None, extensions={REPLAY_EXTENSION: "sub"})
    assert journal.record([marked, new_event("t", "/s", None)], "a") == 1
    assert journal.count() == 1
    journal.close()


def test_prune_keeps_only_the_retention_window(database_url: str) -> None:
    """Rows older than the retention are pruned; younger rows stay."""
    clock = Clock()
    journal = Journal(database_url, retention=3600, clock=clock)
    journal.record([new_event("t", "/s", None, id="old")], "a")
    clock.now += 1800
    journal.record([new_event("t", "/s", None, id="new")], "a")
    clock.now += 2000
    assert journal.prune() == 1
    since = datetime.fromtimestamp(0, UTC)
    assert [e.get_id() for e in journal.replay_events("a", since)] == ["new"]
    journal.close()


def test_plugin_prunes_from_the_publish_hook(tmp_path: Path) -> None:
    """The plugin prunes old rows as it records (at most once per prune interval)."""
    clock = Clock()
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}", retention=10, clock=clock)
    plugin = JournalPlugin(journal, prune_interval=0.0)
    plugin.polybus_after_publish([new_event("t", "/s", None)], "a")
    clock.now += 60
    plugin.polybus_after_publish([new_event("t", "/s", None)], "a")
    assert journal.count() == 1
    journal.close()


def test_journal_table_is_validated_with_did_you_mean() -> None:
    """Unknown [journal] keys get a did-you-mean; a missing url or bad retention names the field."""
    with pytest.raises(ConfigError, match="did you mean 'retention'"):
        parse_journal({"url": "sqlite:///j.db", "retension": "7d"})
    with pytest.raises(ConfigError, match=r"journal\.url"):
        parse_journal({"retention": 60})
    with pytest.raises(ConfigError, match=r"journal\.retention"):
        parse_journal({"url": "sqlite:///j.db", "retention": "soon"})
    settings = parse_journal({"url": "sqlite:///j.db", "retention": "2d"})
    assert settings.retention == 2 * 86400


def test_journal_table_in_config_installs_the_plugin_once(tmp_path: Path) -> None:
    """A [journal] table registers the plugin (once) and connect_with_journal records publishes."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    config = parse_config({"provider": "local", "journal": {"url": url, "retention": 600}})
    pm = plugin_manager()
    first = install_journal(pm, config)
    assert first is not None and install_journal(pm, config) is first
    assert install_journal(plugin_manager(), parse_config({"provider": "local"})) is None
    first.journal.close()
    with connect_with_journal(config) as bus:
        bus.publish(new_event("t", "/s", {"x": 1}, id="via-config"), topic="a")
    journal = Journal(url)
    assert [e.get_id() for e in journal.replay_events("a", datetime.fromtimestamp(0, UTC))] == ["via-config"]
    journal.close()
