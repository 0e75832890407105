"""The durable bus prunes acked events after retention_seconds, replays what it keeps, reports its size."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polybus.adapters.local.durable import DurableBus
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.events import new_event


def _publish(bus: DurableBus, n: int, kind: str = "com.x") -> None:
    bus.publish("t", [new_event(kind, "/x", {"i": i, "pad": "p" * 200}) for i in range(n)])


def _ack_all(bus: DurableBus, sub: str = "s") -> int:
    acked = 0
    while batch := bus.receive(sub, 500, 0.0):
        for delivery in batch:
            delivery.ack()
        acked += len(batch)
    return acked


def test_prune_removes_only_acked_events_past_retention(tmp_path: Path) -> None:
    """Acked events go; events pending for a subscription or dead-lettered stay."""
    bus = DurableBus(tmp_path / "r.db", retention_seconds=0)
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy()))
    _publish(bus, 10)
    batch = bus.receive("s", 10, 1.0)
    for delivery in batch[:6]:
        delivery.ack()
    batch[6].dead_letter("bad")
    for delivery in batch[7:]:
        delivery.nack(delay=60)
    time.sleep(0.01)
    assert bus.prune() == 6
    stats = bus.stats()
    assert (stats.messages, stats.deliveries, stats.dead_letters) == (4, 3, 1)
    assert stats.pruned_through is not None
    bus.close()


def test_events_younger_than_retention_are_kept(tmp_path: Path) -> None:
    """With an hour's retention nothing just acked is pruned, so replay sees all of it."""
    bus = DurableBus(tmp_path / "r.db", retention_seconds=3600)
    bus.provision(SubscriptionSpec("s", "t"))
    _publish(bus, 5)
    assert _ack_all(bus) == 5
    assert bus.prune() == 0
    assert (bus.stats().messages, bus.stats().pruned_through) == (5, None)
    bus.replay("s", datetime.now(UTC) - timedelta(hours=1))
    assert _ack_all(bus) == 5
    bus.close()


def test_replay_from_before_the_horizon_replays_what_is_kept_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Replay across the pruning horizon redelivers the kept events and logs a warning."""
    bus = DurableBus(tmp_path / "r.db", retention_seconds=0)
    bus.provision(SubscriptionSpec("s", "t"))
    start = datetime.now(UTC) - timedelta(seconds=1)
    _publish(bus, 5, "com.old")
    _ack_all(bus)
    time.sleep(0.01)
    bus.prune()
    _publish(bus, 3, "com.kept")
    batch = bus.receive("s", 10, 1.0)
    for delivery in batch:
        delivery.nack(delay=60)  # still pending, so kept
    with caplog.at_level(logging.WARNING, logger="polybus.adapters.local.durable"):
        bus.replay("s", start)
    assert "were pruned" in caplog.text and "replayed the 3 kept" in caplog.text
    assert sorted(d.event.get_type() for d in bus.receive("s", 10, 1.0)) == ["com.kept"] * 3
    bus.close()


def test_the_file_stops_growing_under_steady_traffic(tmp_path: Path) -> None:
    """Publish-ack-prune rounds keep the row count bounded and the database file flat."""
    path = tmp_path / "r.db"
    bus = DurableBus(path, retention_seconds=0)
    bus.provision(SubscriptionSpec("s", "t"))
    sizes = []
    for _ in range(12):
        _publish(bus, 1000)
        assert _ack_all(bus) == 1000
        time.sleep(0.01)
        bus.prune()
        # Write the log back into the file, as SQLite's automatic checkpoints do.
        with closing(sqlite3.connect(path)) as other:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stats = bus.stats()
        assert (stats.messages, stats.wal_bytes > 0) == (0, True)
        sizes.append(stats.file_bytes)
    # Kept, a round's events would add ~300 KB each time: the file would triple.
    assert sizes[-1] <= 1.2 * sizes[3]
    bus.close()


def test_publish_prunes_by_itself(tmp_path: Path) -> None:
    """Publishing starts a prune pass now and then, so nobody has to call prune()."""
    bus = DurableBus(tmp_path / "r.db", retention_seconds=0)
    bus.provision(SubscriptionSpec("s", "t"))
    _publish(bus, 50)
    _ack_all(bus)
    time.sleep(1.1)  # past the prune interval
    _publish(bus, 1)
    assert bus.stats().messages == 1
    bus.close()
