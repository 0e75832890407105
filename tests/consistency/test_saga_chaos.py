"""Sagas under chaos: 30% handler failures, SIGKILLed and restarted services, one timeout."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from examples import order_saga as shop
from polybus.adapters.local.durable import DurableBus
from polybus.core.bus import Bus
from polybus.core.consistency.inbox import open_database
from polybus.core.consistency.saga_store import saga_table
from tests.consistency.helpers import wait_until
from tests.consistency.saga_chaos import TIMEOUT_ORDER

REPO = Path(__file__).resolve().parents[2]
ORDERS = 24
KILLS = 3


def start_service(
    bus_path: Path, database: str, seed: int, log: Path, mode: str
) -> subprocess.Popen[bytes]:
    """The three services in a child process (its output to `log`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "tests.consistency.saga_chaos", str(bus_path), database, str(seed)]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv + ([mode] if mode == "outbox" else []),
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def wait_ready(log: Path, starts: int) -> None:
    """Wait until the service's log says ready `starts` times (its subscriptions exist)."""
    wait_until(lambda: log.read_text().count("ready") >= starts, limit=30, what="the service")


def sagas(engine: Engine) -> dict[str, tuple[str, str]]:
    """Every order saga: id -> (status, reason)."""
    with engine.connect() as conn:
        rows = conn.execute(select(saga_table.c.saga_id, saga_table.c.status, saga_table.c.reason))
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def statuses(engine: Engine, table: str) -> dict[str, str]:
    """order id -> status in the inventory's or the payments' table."""
    chosen = shop.reservations if table == "inventory" else shop.payments_table
    with engine.connect() as conn:
        return {str(r[0]): str(r[1]) for r in conn.execute(select(chosen.c.order_id, chosen.c.status))}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["publish", "outbox"])
def test_every_saga_ends_and_the_counts_add_up_under_chaos(
    database_url: str, mode: str, tmp_path: Path
) -> None:
    """Failures, kills and a timeout: all sagas end completed or compensated, inventory released for each compensated."""
    rng = random.Random(20)
    bus_path, log = tmp_path / "bus.db", tmp_path / "service.log"
    engine = open_database(database_url)
    publisher = Bus(DurableBus(bus_path))
    orders = [f"chaos-{n}" for n in range(ORDERS - 1)] + [TIMEOUT_ORDER]
    declined = {order for n, order in enumerate(orders[:-1]) if n % 4 == 3}
    service = start_service(bus_path, database_url, 1, log, mode)
    try:
        wait_ready(log, 1)  # events published before the subscriptions exist would go nowhere
        batches = [orders[n :: KILLS + 1] for n in range(KILLS + 1)]
        in_flight_at_kill = []
        for kill, batch in enumerate(batches):  # a batch, then SIGKILL at a random moment
            for order in batch:
                amount = shop.CARD_LIMIT + 1 if order in declined else 50
                publisher.publish(shop.place_order(order, "sku-1", 1, amount), shop.ORDERS)
            if kill == KILLS:
                break
            time.sleep(rng.uniform(0.01, 0.12))  # mid-flight: sagas between steps
            service.send_signal(signal.SIGKILL)
            service.wait(10)
            ended = sum(s != "running" for s, _ in sagas(engine).values())
            in_flight_at_kill.append(sum(len(b) for b in batches[: kill + 1]) - ended)
            service = start_service(bus_path, database_url, 2 + kill, log, mode)
            wait_ready(log, kill + 2)

        def all_ended() -> bool:
            found = sagas(engine)
            return len(found) == ORDERS and all(s != "running" for s, _ in found.values())

        wait_until(all_ended, limit=60, what="every saga to end")
        final = sagas(engine)
        compensated = {o for o, (s, _) in final.items() if s == "compensated"}
        completed = {o for o, (s, _) in final.items() if s == "completed"}

        def compensations_applied() -> bool:
            inventory, payments = statuses(engine, "inventory"), statuses(engine, "payments")
            return all(inventory.get(o) == "released" for o in compensated) and not any(
                payments.get(o) == "charged" for o in compensated
            )

        wait_until(compensations_applied, limit=30, what="every compensation to take effect")
        inventory, payments = statuses(engine, "inventory"), statuses(engine, "payments")
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
        publisher.close()
        engine.dispose()
    print(f"orders not ended at each kill: {in_flight_at_kill}; completed {len(completed)}, "
          f"compensated {len(compensated)}")  # fmt: skip
    assert len(completed) + len(compensated) == ORDERS
    assert declined <= compensated
    assert TIMEOUT_ORDER in compensated
    assert "no reply within" in final[TIMEOUT_ORDER][1]
    assert all(inventory[o] == "reserved" and payments[o] == "charged" for o in completed)
