"""Chaos: SIGKILL the writer and the relays (two at once) at random moments over 10,000 business writes.

The relay publishes to the local durable bus (an SQLite file), so what it
published is visible to this process after the relay died: a subscription
``check`` provisioned before the run receives every published event, with
ordered delivery, i.e. in publish order per partition key.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from polybus.adapters.local.durable import DurableBus
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from tests.consistency.outbox_helpers import orders

TOTAL = 10_000
ROOT = Path(__file__).resolve().parents[2]


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_every_committed_write_is_published_despite_kills(database_url: str, tmp_path: Path) -> None:
    """After random kill -9 of writer and relay: every committed write published, none rolled back, key order kept."""
    bus_path = tmp_path / "bus.db"
    checker = DurableBus(bus_path)
    checker.provision(SubscriptionSpec("check", "orders", None, DeliveryPolicy(ordered=True)))
    config = tmp_path / "polybus.toml"
    config.write_text(f'provider = "local"\n[local]\ndurable = true\npath = "{bus_path}"\n')
    writer_argv = [sys.executable, "-m", "tests.consistency.chaos_outbox_writer", database_url, str(TOTAL)]
    relay_argv = [
        sys.executable, "-m", "polybus", "--config", str(config), "outbox", "relay",
        "--db", database_url, "--lease", "30", "--poll-interval", "0.05", "--batch-size", "200",
    ]
    rng = random.Random(20)
    wlog, rlog = tmp_path / "writer.log", tmp_path / "relay.log"
    writer = _spawn(writer_argv, wlog)
    relays = [_spawn(relay_argv, rlog), _spawn(relay_argv, rlog)]  # two at once: leases keep them apart
    kills = {"writer": 0, "relay": 0}
    deadline = time.monotonic() + 240
    try:
        while writer.poll() != 0:
            assert time.monotonic() < deadline, "the writer did not finish"
            assert writer.poll() in (None, 0), f"writer failed: {wlog.read_text()[-2000:]}"
            assert all(r.poll() is None for r in relays), f"relay failed: {rlog.read_text()[-2000:]}"
            time.sleep(rng.uniform(0.3, 1.0))
            if (kills["writer"] == 0 or rng.random() < 1 / 3) and writer.poll() is None:
                _kill(writer)
                kills["writer"] += 1
                writer = _spawn(writer_argv, wlog)
            else:
                which = rng.randrange(2)
                _kill(relays[which])
                kills["relay"] += 1
                relays[which] = _spawn(relay_argv, rlog)
        for relay in relays:
            _kill(relay)
        done = subprocess.run([*relay_argv, "--once"], cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        _kill(writer)
        for relay in relays:
            _kill(relay)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        committed = {f"order-{n}" for n in conn.execute(select(orders.c.id)).scalars()}
    engine.dispose()
    first: list[str] = []
    seen: set[str] = set()
    while True:
        batch = checker.receive("check", 1000, 0.0)
        if not batch:
            break
        for delivery in batch:
            eid = delivery.event.get_id()
            if eid not in seen:
                seen.add(eid)
                first.append(eid)
            delivery.ack()
    checker.close()
    assert len(committed) == TOTAL and kills["writer"] > 0 and kills["relay"] > 0
    assert not [eid for eid in seen if eid.startswith("rb-")], "an event of a rolled-back write was published"
    assert seen == committed
    by_key: dict[int, list[int]] = {}
    for eid in first:
        n = int(eid.split("-")[1])
        by_key.setdefault(n % 16, []).append(n)
    assert all(ns == sorted(ns) for ns in by_key.values())
