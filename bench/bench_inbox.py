"""Idempotent inbox overhead on SQLite and PostgreSQL, against a plain transactional handler.

`Inbox.handle` direct: a new event whose effect is a one-row counter update,
then the same events again (duplicates: the inbox row exists, the effect is
skipped). Through `polybus.App` (concurrency 4, the memory bus): a handler
that opens its own transaction for the update (baseline) against
`idempotent=True` with the update on `ctx.connection` (the inbox row and the
update commit together). Both modes run in the same process, one after the
other, on the same database.

    python bench/bench_inbox.py [--events 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Column, Integer, MetaData, String, Table, select, update  # noqa: E402

from bench.common import machine  # noqa: E402
from polybus import App, Context, new_event  # noqa: E402
from polybus.adapters.local.memory import MemoryBus  # noqa: E402
from polybus.core.bus import Bus  # noqa: E402
from polybus.core.consistency.inbox import Inbox, open_database  # noqa: E402
from tests.consistency.helpers import running, wait_until  # noqa: E402
from tests.fixtures.postgres import new_postgres_database, start_postgres  # noqa: E402

METADATA = MetaData()
COUNTERS = Table(
    "bench_counters", METADATA, Column("name", String(50), primary_key=True), Column("n", Integer)
)


def _setup(url: str) -> Any:
    engine = open_database(url)
    METADATA.drop_all(engine)
    METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(COUNTERS.insert().values(name="c", n=0))
    return engine


def direct(url: str, events: int) -> tuple[float, float]:
    """Events/s through Inbox.handle: new events, then duplicates."""
    engine = _setup(url)
    inbox = Inbox(engine)
    inbox.setup()
    batch = [new_event("t", "/b", {}, id=f"d{i}-{time.time()}") for i in range(events)]
    start = time.perf_counter()
    for event in batch:
        inbox.handle("s", event, lambda c: c.execute(update(COUNTERS).values(n=COUNTERS.c.n + 1)))
    new = events / (time.perf_counter() - start)
    start = time.perf_counter()
    for event in batch:
        inbox.handle("s", event, lambda c: None)
    duplicate = events / (time.perf_counter() - start)
    engine.dispose()
    return new, duplicate


def through_app(url: str, idempotent: bool, events: int) -> float:
    """Events/s through an App at concurrency 4, until the counter reached `events`."""
    engine = _setup(url)
    app = App("bench", database=engine)

    def handler(event: Any, ctx: Context) -> None:
        if idempotent:
            ctx.connection.execute(update(COUNTERS).values(n=COUNTERS.c.n + 1))
        else:
            with engine.begin() as conn:
                conn.execute(update(COUNTERS).values(n=COUNTERS.c.n + 1))

    app.subscriber("s", topic="t", concurrency=4, idempotent=idempotent)(handler)
    bus = Bus(MemoryBus())
    with running(bus, app):
        batch = [new_event("t", "/b", {}, id=f"a{idempotent}{i}-{time.time()}") for i in range(events)]
        start = time.perf_counter()
        for i in range(0, events, 100):
            bus.publish(batch[i : i + 100], "t")

        def done() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(select(COUNTERS.c.n)).scalar_one() >= events)

        wait_until(done, limit=300)
        rate = events / (time.perf_counter() - start)
    bus.close()
    engine.dispose()
    return rate


def main() -> None:
    """Print one table row per database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    print(machine())
    print("| database | Inbox.handle new | duplicate | App plain txn | App idempotent | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp, start_postgres() as server:
        for name, url in (("SQLite", f"sqlite:///{tmp}/inbox.db"), ("PostgreSQL", new_postgres_database(server))):
            new, duplicate = direct(url, args.events)
            plain = through_app(url, False, args.events)
            idem = through_app(url, True, args.events)
            print(
                f"| {name} | {new:,.0f}/s | {duplicate:,.0f}/s | {plain:,.0f}/s | {idem:,.0f}/s "
                f"| {idem / plain:.2f}x |"
            )


if __name__ == "__main__":
    main()
