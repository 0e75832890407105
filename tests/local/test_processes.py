"""Several real processes sharing one durable file: subscriptions, locking, leases, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from polybus.adapters.local.durable import DurableBus
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.events import new_event
from tests.local.conftest import python

IMPORTS = """
import os, sys, time
from polybus.adapters.local.durable import DurableBus
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.events import new_event
"""


def _drain(bus: DurableBus, sub: str, seen: Counter[str] | None = None) -> Counter[str]:
    seen = Counter() if seen is None else seen
    while batch := bus.receive(sub, 500, 0.3):
        for delivery in batch:
            seen[delivery.event.get_id()] += 1
            delivery.ack()
    return seen


def test_a_publisher_opened_earlier_delivers_to_a_later_subscription(
    tmp_path: Path, run_child: Callable[[str], str]
) -> None:
    """A subscription another process creates after the publisher opened the file gets its events."""
    db = tmp_path / "shared.db"
    publisher = DurableBus(db)
    run_child(IMPORTS + f'DurableBus({str(db)!r}).provision(SubscriptionSpec("late", "t"))')
    publisher.publish("t", [new_event("com.x", "/x", {"i": i}) for i in range(100)])
    out = run_child(
        IMPORTS
        + f"""
        bus = DurableBus({str(db)!r})
        n = 0
        while batch := bus.receive("late", 500, 0.5):
            n += len(batch)
            for d in batch:
                d.ack()
        bus.close()
        print(n)
        """.replace("\n        ", "\n")
    )
    assert int(out) == 100
    publisher.close()


def test_opening_the_file_never_takes_a_live_process_leases(
    tmp_path: Path, run_child: Callable[[str], str]
) -> None:
    """Another process opening the file cannot receive events this (live) process has leased."""
    db = tmp_path / "leases.db"
    bus = DurableBus(db)
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy(ack_deadline=30)))
    bus.publish("t", [new_event("com.x", "/x", {"i": i}) for i in range(4)])
    held = bus.receive("s", 10, 1.0)
    assert len(held) == 4
    code = IMPORTS + f'print(len(DurableBus({str(db)!r}).receive("s", 10, 0.5)))'
    assert [int(run_child(code)) for _ in range(2)] == [0, 0]
    for delivery in held:
        delivery.ack()
    bus.close()


def test_the_leases_of_a_killed_process_come_back_at_once(tmp_path: Path) -> None:
    """Leases held by a process killed with SIGKILL are released when the file is next opened."""
    db = tmp_path / "dead.db"
    bus = DurableBus(db)
    bus.provision(SubscriptionSpec("s", "t", None, DeliveryPolicy(ack_deadline=300)))
    bus.publish("t", [new_event("com.x", "/x", {"i": i}) for i in range(4)])
    bus.close()
    code = (
        IMPORTS
        + f"""
bus = DurableBus({str(db)!r})
print(len(bus.receive("s", 10, 1.0)), flush=True)
time.sleep(60)
"""
    )
    child = subprocess.Popen(python(code), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "4"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    bus = DurableBus(db)
    back = bus.receive("s", 10, 0.5)
    assert sorted(d.attempt for d in back) == [2, 2, 2, 2]
    for delivery in back:
        delivery.ack()
    bus.close()


PUBLISHER = (
    IMPORTS
    + """
db, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
bus = DurableBus(db)
tried = open(sys.argv[4], "a")
for lo in range(0, count, 5):
    batch = [new_event("com.job", "/jobs", {"i": i}, id=f"{name}-{i}") for i in range(lo, lo + 5)]
    tried.write("".join(e.get_id() + "\\n" for e in batch)); tried.flush()
    bus.publish("jobs", batch)
    print("\\n".join(e.get_id() for e in batch), flush=True)
    time.sleep(float(sys.argv[5]))
bus.close()
"""
)

CONSUMER = (
    IMPORTS
    + """
db, handled = sys.argv[1], open(sys.argv[2], "a")
bus = DurableBus(db)
while True:
    for d in bus.receive("work", 10, 0.2):
        handled.write(d.event.get_id() + "\\n"); handled.flush()
        time.sleep(0.001)
        d.ack()
"""
)


def _lines(text: str) -> list[str]:
    """Complete lines only: a process killed mid-write may leave a partial last line."""
    return text.split("\n")[:-1]


def _start(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*python(code), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _stdout(proc: subprocess.Popen[str]) -> tuple[list[str], str]:
    out, err = proc.communicate(timeout=60)
    return _lines(out), err


def test_concurrent_processes_never_see_database_is_locked(tmp_path: Path) -> None:
    """Four publishing and two consuming processes on one file: no errors, every event once."""
    db, tried = tmp_path / "busy.db", tmp_path / "tried.txt"
    bus = DurableBus(db)
    bus.provision(SubscriptionSpec("work", "jobs"))
    handled = [tmp_path / f"handled{i}.txt" for i in range(2)]
    consumers = [_start(CONSUMER, db, path) for path in handled]
    publishers = [_start(PUBLISHER, db, f"p{i}", 300, tried, 0) for i in range(4)]
    results = [_stdout(p) for p in publishers]
    assert [(p.returncode, err) for p, (_, err) in zip(publishers, results, strict=True)] == [
        (0, "")
    ] * 4
    published = {event_id for out, _ in results for event_id in out}
    assert len(published) == 1200
    deadline = time.monotonic() + 30
    while bus.backlog("work") and time.monotonic() < deadline:
        time.sleep(0.1)
    for consumer in consumers:
        consumer.kill()
        _, err = consumer.communicate()
        assert "Error" not in err
    seen = Counter(i for path in handled for i in _lines(path.read_text()))
    _drain(bus, "work", seen)
    assert set(seen) == published
    print(f"duplicates without faults: {sum(seen.values()) - len(seen)}")
    bus.close()


def test_kill_9_of_publishers_and_consumers_sharing_a_file_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL of a publisher and a consumer mid-stream: 0 lost, duplicates counted, ids add up."""
    db, tried = tmp_path / "kill.db", tmp_path / "tried.txt"
    tried.touch()
    bus = DurableBus(db)
    bus.provision(SubscriptionSpec("work", "jobs", None, DeliveryPolicy(ack_deadline=2)))
    bus.close()
    handled = [tmp_path / f"handled{i}.txt" for i in range(3)]
    consumers = [_start(CONSUMER, db, handled[i]) for i in range(2)]
    publishers = [_start(PUBLISHER, db, f"p{i}", 1000, tried, 0.002) for i in range(2)]
    for path in handled:
        path.touch()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        handled[0].stat().st_size and tried.read_text().count("\n") >= 300
    ):
        time.sleep(0.05)
    # kill -9 one publisher and one consumer mid-stream, start a new consumer on the same file
    for victim in (publishers[0], consumers[0]):
        os.kill(victim.pid, signal.SIGKILL)
    consumers.append(_start(CONSUMER, db, handled[2]))
    results = [_stdout(p) for p in publishers]
    assert (publishers[0].returncode, publishers[1].returncode) == (-signal.SIGKILL, 0)
    confirmed = {event_id for out, _ in results for event_id in out}
    bus = DurableBus(db)
    deadline = time.monotonic() + 30
    while bus.backlog("work") and time.monotonic() < deadline:
        time.sleep(0.1)
    for consumer in consumers:
        consumer.kill()
        consumer.communicate()
    bus.close()
    bus = DurableBus(db)  # releases the killed consumers' leases
    seen = Counter(i for path in handled for i in _lines(path.read_text()))
    _drain(bus, "work", seen)
    attempted = set(_lines(tried.read_text()))
    lost = confirmed - set(seen)
    unconfirmed = set(seen) - confirmed  # published when its publisher died, before it printed
    duplicates = sum(seen.values()) - len(seen)
    print(
        f"confirmed {len(confirmed)}, handled {len(seen)} distinct ({len(unconfirmed)} "
        f"unconfirmed), {duplicates} duplicate handlings, lost {len(lost)}"
    )
    assert lost == set()
    assert set(seen) <= attempted  # nothing handled that nobody published
    assert len(seen) == len(confirmed) + len(unconfirmed)
    assert sum(seen.values()) == len(seen) + duplicates
    assert (bus.backlog("work"), bus.dead_letter_reasons("work")) == (0, [])
    assert len(confirmed) > 1000  # the surviving publisher finished its 1,000
    bus.close()
