"""The embedded local adapter beyond the contract: replay, durability across kill -9, filters."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polybus.adapters.local.durable import DurableBus
from polybus.adapters.local.memory import MemoryBus
from polybus.adapters.local.plugin import make_local_adapter
from polybus.core.bus import Bus
from polybus.core.codecs.avro_compact import from_avro_compact
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import ConfigError
from polybus.core.events import new_event
from polybus.core.filters import parse_filter

REPO = Path(__file__).resolve().parents[2]


def _replay_check(adapter: MemoryBus | DurableBus) -> None:
    adapter.provision(SubscriptionSpec("s", "t"))
    adapter.publish("t", [new_event("com.old", "/x")])
    cut = datetime.now(UTC)
    time.sleep(0.01)
    adapter.publish("t", [new_event("com.new", "/x", {"i": i}) for i in range(3)])
    for d in adapter.receive("s", 10, 0.5):
        d.ack()
    adapter.replay("s", cut)
    again = adapter.receive("s", 10, 0.5)
    assert sorted(d.event.get_type() for d in again) == ["com.new"] * 3
    for d in again:
        d.ack()
    adapter.replay("s", cut - timedelta(hours=1))
    assert len(adapter.receive("s", 10, 0.5)) == 4


def test_memory_replay_from_a_point_in_time() -> None:
    """Replay re-queues exactly the events published at or after the given time."""
    _replay_check(MemoryBus())


def test_durable_replay_from_a_point_in_time(tmp_path: Path) -> None:
    """The durable bus replays from its stored log the same way."""
    bus = DurableBus(tmp_path / "r.db")
    _replay_check(bus)
    bus.close()


def test_durable_state_survives_reopen(tmp_path: Path) -> None:
    """Subscriptions, backlog and dead letters persist when the bus is closed and reopened."""
    path = tmp_path / "p.db"
    bus = DurableBus(path)
    bus.provision(
        SubscriptionSpec("s", "t", parse_filter({"prefix": {"type": "com.keep"}}), DeliveryPolicy())
    )
    bus.publish("t", [new_event("com.keep.a", "/x"), new_event("com.drop", "/x")])
    [d] = bus.receive("s", 10, 0.5)
    d.dead_letter("bad input")
    bus.publish("t", [new_event("com.keep.b", "/x")])
    bus.close()
    bus = DurableBus(path)
    [pending] = bus.receive("s", 10, 0.5)
    assert pending.event.get_type() == "com.keep.b"
    assert bus.dead_letter_reasons("s") == ["bad input"]
    bus.close()


def test_filter_dialects_on_the_local_bus() -> None:
    """Every Subscriptions API dialect selects the right events on the local bus."""
    cases = {
        "exact": ({"exact": {"type": "a.b"}}, {"a.b"}),
        "prefix": ({"prefix": {"type": "a."}}, {"a.b", "a.c"}),
        "suffix": ({"suffix": {"type": ".c"}}, {"a.c", "x.c"}),
        "any": ({"any": [{"exact": {"type": "a.b"}}, {"exact": {"type": "x.c"}}]}, {"a.b", "x.c"}),
        "all": ({"all": [{"prefix": {"type": "a."}}, {"suffix": {"type": ".c"}}]}, {"a.c"}),
        "not": ({"not": {"prefix": {"type": "a."}}}, {"x.c"}),
    }
    bus = Bus(MemoryBus())
    seen: dict[str, set[str]] = {name: set() for name in cases}
    for name, (flt, _) in cases.items():
        bus.subscribe(name, lambda e, n=name: seen[n].add(e.get_type()), filter=flt)
    bus.publish([new_event(t, "/x") for t in ("a.b", "a.c", "x.c")])
    bus.drain()
    assert seen == {name: expected for name, (_, expected) in cases.items()}


CHILD = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {repo!r})
    from polybus.adapters.local.durable import DurableBus
    from polybus.core.contract import SubscriptionSpec
    from polybus.core.events import new_event

    bus = DurableBus({db!r})
    bus.provision(SubscriptionSpec("work", "jobs"))
    acked = open({acked!r}, "a")

    def consume():
        while True:
            for d in bus.receive("work", 5, 0.1):
                time.sleep(0.002)
                d.ack()
                acked.write(d.event.get_id() + "\\n"); acked.flush()

    threading.Thread(target=consume, daemon=True).start()
    i = 0
    while True:
        batch = [new_event("com.job", "/jobs", {{"i": i + k}}) for k in range(20)]
        bus.publish("jobs", batch)
        i += 20
        print("\\n".join(e.get_id() for e in batch), flush=True)
    """
)


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    """After kill -9 mid-stream, every published event not acknowledged is delivered again."""
    db, acked_file = tmp_path / "k.db", tmp_path / "acked.txt"
    acked_file.touch()
    script = CHILD.format(repo=str(REPO), db=str(db), acked=str(acked_file))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert child.stdout is not None
    published: list[str] = []
    while len(published) < 400:
        line = child.stdout.readline()
        assert line, "child exited early"
        published.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    published.extend(line.strip() for line in child.stdout.read().splitlines() if line.strip())
    child.stdout.close()
    acked_before = set(acked_file.read_text().split())
    assert acked_before, "the consumer should have acknowledged some events before the kill"

    bus = DurableBus(db)
    redelivered: set[str] = set()
    while batch := bus.receive("work", 500, 0.2):
        for d in batch:
            redelivered.add(d.event.get_id())
            d.ack()
    bus.close()
    missing = set(published) - acked_before - redelivered
    assert not missing, f"{len(missing)} published events were lost"
    assert set(published) - acked_before <= redelivered


def test_stats_add_up_under_concurrency() -> None:
    """With four consumer threads and a failing handler, every event ends acked or dead-lettered."""
    bus = Bus(MemoryBus())
    policy = DeliveryPolicy(max_delivery_attempts=2, retry=DeliveryPolicy().retry.__class__(0, 0))
    sub = bus.subscribe(
        "s",
        lambda e: (_ for _ in ()).throw(RuntimeError("x")) if e.get_data()["i"] % 3 == 0 else None,
        policy=policy,
    )
    bus.publish([new_event("t", "/x", {"i": i}) for i in range(300)])
    bus.start(concurrency=4)
    deadline = time.monotonic() + 20
    while sub.stats.acked + sub.stats.dead_lettered < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    bus.stop()
    assert (sub.stats.acked, sub.stats.dead_lettered) == (200, 100)
    assert sub.stats.delivered == sub.stats.settled() == 200 + 2 * 100
    assert json.dumps(sub.stats.__dict__)  # plain numbers, printable


def test_durable_file_keeps_its_event_format(tmp_path: Path) -> None:
    """A file records the event format it was created with; reopening it with another is a clear error."""
    path = tmp_path / "f.db"
    bus = DurableBus(path, event_format="avro-compact")
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy()))
    bus.publish("t", [new_event("com.a", "/x", {"n": 1}, extensions={"seen": 3})])
    bus.close()
    body = sqlite3.connect(path).execute("SELECT body FROM messages").fetchone()[0]
    assert from_avro_compact(body).get_data() == {"n": 1}
    with pytest.raises(ConfigError) as raised:
        DurableBus(path)
    [problem] = raised.value.problems
    assert (problem.field, problem.value) == ("local.event_format", "json")
    assert "stores avro-compact events" in problem.rule
    bus = DurableBus(path, event_format="avro-compact")
    [delivery] = bus.receive("s", 10, 0.5)
    assert delivery.event.get_attributes()["seen"] == 3
    bus.close()


def test_a_file_from_before_formats_were_recorded_holds_json(tmp_path: Path) -> None:
    """An older file with events and no recorded format opens as JSON and refuses another format."""
    path = tmp_path / "old.db"
    bus = DurableBus(path)
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy()))
    bus.publish("t", [new_event("com.a", "/x")])
    bus.close()
    sqlite3.connect(path, isolation_level=None).execute("DELETE FROM meta")
    with pytest.raises(ConfigError):
        DurableBus(path, event_format="protobuf")
    bus = DurableBus(path)
    assert len(bus.receive("s", 10, 0.5)) == 1
    bus.close()


def test_event_format_setting_is_checked() -> None:
    """[local] event_format names a known format and needs durable = true; errors name the field."""
    for settings, rule in (
        ({"durable": True, "event_format": "xml"}, "must be one of"),
        ({"event_format": "avro"}, "applies to durable = true"),
    ):
        with pytest.raises(ConfigError) as raised:
            make_local_adapter(settings)
        [problem] = raised.value.problems
        assert problem.field == "local.event_format" and rule in problem.rule
