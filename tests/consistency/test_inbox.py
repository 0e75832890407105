"""The idempotent inbox: a counter ends at the number of distinct events, whatever is redelivered."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from polybus import App, Context, new_event
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.consistency.inbox import (
    Inbox,
    InboxSettings,
    inbox_table,
    open_database,
    parse_inbox_settings,
)
from polybus.core.errors import ConfigError, ValidationError
from tests.consistency.helpers import LostAcks, running, wait_until

EVENTS = 30
counters_md = MetaData()
counters = Table(
    "counters", counters_md, Column("name", String(50), primary_key=True), Column("n", Integer)
)


class Base(DeclarativeBase):
    """ORM base of the session test."""


class Note(Base):
    """A row the handler adds through ctx.session."""

    __tablename__ = "notes"
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test database opened as the App opens it, with the counter table."""
    made = open_database(database_url)
    counters_md.create_all(made)
    Base.metadata.create_all(made)
    with made.begin() as conn:
        conn.execute(counters.insert().values(name="c", n=0))
    yield made
    made.dispose()


def count(engine: Engine) -> int:
    """The counter's value."""
    with engine.connect() as conn:
        return int(conn.execute(select(counters.c.n)).scalar_one())


def bump(ctx: Context) -> None:
    """The handler's effect: one increment, on the inbox transaction's connection."""
    assert ctx.connection is not None
    ctx.connection.execute(update(counters).values(n=counters.c.n + 1))


def counting_app(engine: Engine, *, use_async: bool = False, topic: str = "t") -> App:
    """An App whose idempotent handler increments the counter."""
    app = App("counter", database=engine)
    if use_async:

        async def handle(event: Any, ctx: Context) -> None:
            await asyncio.to_thread(bump, ctx)

        app.subscriber("count", topic=topic, concurrency=4, idempotent=True)(handle)
    else:

        def handle_sync(event: Any, ctx: Context) -> None:
            bump(ctx)

        app.subscriber("count", topic=topic, concurrency=4, idempotent=True)(handle_sync)
    return app


def publish_twice(bus: Bus, n: int, topic: str = "t") -> None:
    """Publish `n` distinct events, each one twice (same source and id)."""
    events = [new_event("com.test.tick", "/test", {"n": i}, id=f"e{i}") for i in range(n)]
    for event in events:
        bus.publish([event, event], topic)


def run_counter(
    bus: Bus, engine: Engine, *, use_async: bool = False, n: int = EVENTS, topic: str = "t"
) -> App:
    """Run the counting app over `n` events published twice with lost first acks."""
    app = counting_app(engine, use_async=use_async, topic=topic)
    with running(bus, app):
        publish_twice(bus, n, topic)
        inbox = app.inbox
        assert inbox is not None
        # every event: 2 copies x 2 deliveries (the first ack is lost) = 1 handled + 3 duplicates
        wait_until(
            lambda: "count" in inbox.stats and inbox.stats["count"].duplicates >= 3 * n,
            what="every redelivery",
        )
        metrics = app.metrics()
    assert inbox.stats["count"].handled == n
    line = 'polybus_inbox_duplicates_total{app="counter",subscription="count"} '
    shown = [int(x.split()[-1]) for x in metrics.splitlines() if x.startswith(line)]
    assert len(shown) == 1 and shown[0] >= 3 * n  # a provider may redeliver more, never less
    return app


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_counter_counts_each_event_once_on_the_local_bus(engine: Engine, use_async: bool) -> None:
    """Duplicated publishes and lost acks at concurrency 4 leave the counter at the distinct count."""
    bus = Bus(LostAcks(MemoryBus()))
    try:
        run_counter(bus, engine, use_async=use_async)
    finally:
        bus.close()
    assert count(engine) == EVENTS


def test_counter_counts_each_event_once_on_gcp(
    engine: Engine, gcp_adapter_factory: Callable[[], Any]
) -> None:
    """The same on the Pub/Sub emulator: the inbox does not depend on the provider."""
    bus = Bus(LostAcks(gcp_adapter_factory()))
    run_counter(bus, engine, n=8, topic=f"t-{uuid.uuid4().hex[:8]}")
    assert count(engine) == 8


def test_a_failing_handler_rolls_back_its_writes_and_the_inbox_row(engine: Engine) -> None:
    """A handler raising after its write leaves no trace; the retry then counts once."""
    app = App("counter", database=engine)
    failed: set[str] = set()

    @app.subscriber("count", topic="t", idempotent=True)
    def handle(event: Any, ctx: Context) -> None:
        bump(ctx)
        if event.get_id() not in failed:
            failed.add(event.get_id())
            raise RuntimeError("after the write")

    bus = Bus(MemoryBus())
    with running(bus, app):
        for i in range(5):
            bus.publish(new_event("com.test.tick", "/test", {}, id=f"f{i}"), "t")
        wait_until(lambda: count(engine) >= 5 and app.inbox is not None and
                   app.inbox.stats.get("count") is not None and
                   app.inbox.stats["count"].handled == 5, what="five handled")  # fmt: skip
    bus.close()
    assert count(engine) == 5
    assert failed == {f"f{i}" for i in range(5)}


def test_the_session_commits_with_the_inbox_row(engine: Engine) -> None:
    """What a handler adds through ctx.session is stored once, with the event's inbox row."""
    app = App("notes", database=engine)

    @app.subscriber("note", topic="t", idempotent=True)
    def handle(event: Any, ctx: Context) -> None:
        assert ctx.session is not None
        ctx.session.add(Note(event_id=event.get_id()))

    bus = Bus(LostAcks(MemoryBus()))
    with running(bus, app):
        publish_twice(bus, 3)
        wait_until(lambda: app.inbox is not None and app.inbox.stats.get("note") is not None
                   and app.inbox.stats["note"].duplicates >= 9, what="the duplicates")  # fmt: skip
    bus.close()
    with engine.connect() as conn:
        notes = sorted(conn.execute(select(Note.event_id)).scalars())
        rows = conn.execute(select(inbox_table.c.event_id)).scalars().all()
    assert notes == ["e0", "e1", "e2"]
    assert sorted(rows) == ["e0", "e1", "e2"]


def test_concurrent_duplicates_take_effect_once(engine: Engine) -> None:
    """Eight threads handling one event at the same moment: the work runs exactly once."""
    inbox = Inbox(engine)
    inbox.setup()
    event = new_event("com.test.tick", "/test", {}, id="same")
    barrier = threading.Barrier(8)
    ran: list[bool] = []

    def work(conn: Any) -> None:
        conn.execute(update(counters).values(n=counters.c.n + 1))
        time.sleep(0.05)  # hold the transaction open while the others try

    def deliver() -> None:
        barrier.wait()
        ran.append(inbox.handle("sub", event, work))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(ran) == [False] * 7 + [True]
    assert count(engine) == 1
    assert inbox.stats["sub"].duplicates == 7


def test_rows_older_than_the_window_are_pruned(engine: Engine) -> None:
    """After the window an event's row is gone, so the same event is handled again."""
    now = [1000.0]
    inbox = Inbox(engine, InboxSettings(window=60, prune_every=10), clock=lambda: now[0])
    inbox.setup()
    event = new_event("com.test.tick", "/test", {}, id="old")
    assert inbox.handle("sub", event, lambda conn: None)
    assert not inbox.handle("sub", event, lambda conn: None)
    now[0] += 61
    assert inbox.prune() == 1
    assert inbox.handle("sub", event, lambda conn: None)


def test_subscriptions_have_separate_inboxes(engine: Engine) -> None:
    """One event handled by two subscriptions is new to each of them."""
    inbox = Inbox(engine)
    inbox.setup()
    event = new_event("com.test.tick", "/test", {}, id="both")
    assert inbox.handle("a", event, lambda conn: None)
    assert inbox.handle("b", event, lambda conn: None)
    assert not inbox.handle("a", event, lambda conn: None)


def test_an_idempotent_subscriber_without_a_database_fails_at_start(tmp_path: Path) -> None:
    """Starting fails naming the database setting and the subscriber that needs it."""
    app = App("no-db", config=_config(tmp_path, ""))
    app.subscriber("count", idempotent=True)(lambda event: None)
    bus = Bus(MemoryBus())
    with pytest.raises(ValidationError) as failure:
        asyncio.run(app.start(bus=bus))
    bus.close()
    assert failure.value.problems[0].field == "database"
    assert "count" in failure.value.problems[0].rule


def test_the_inbox_table_is_read_from_polybus_toml(tmp_path: Path) -> None:
    """``[inbox] url`` gives the app its database; the window comes from the same table."""
    db = tmp_path / "inbox.db"
    app = App("from-toml", config=_config(tmp_path, f'[inbox]\nurl = "sqlite:///{db}"\nwindow = 120\n'))
    app.subscriber("count", idempotent=True)(lambda event: None)
    bus = Bus(MemoryBus())
    with running(bus, app):
        assert app.inbox is not None
        assert app.inbox.settings.window == 120
    bus.close()
    assert db.exists()


def test_an_unknown_inbox_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    """A misspelt key in [inbox] fails before connecting, suggesting the right one."""
    app = App("typo", config=_config(tmp_path, '[inbox]\nurll = "sqlite:///x.db"\n'))
    app.subscriber("count", idempotent=True)(lambda event: None)
    bus = Bus(MemoryBus())
    with pytest.raises(ConfigError, match="did you mean 'url'"):
        asyncio.run(app.start(bus=bus))
    bus.close()


def test_a_database_that_is_not_a_url_is_refused() -> None:
    """open_database names the field, the value and the rule."""
    with pytest.raises(ConfigError) as failure:
        open_database("inbox.db")
    assert failure.value.problems[0].field == "database"


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "polybus.toml"
    path.write_text('provider = "local"\n' + extra, encoding="utf-8")
    return path


def test_raw_sql_through_the_connection_is_part_of_the_transaction(engine: Engine) -> None:
    """A handler's plain SQL and the inbox row commit together (checked row by row)."""
    inbox = Inbox(engine)
    inbox.setup()
    event = new_event("com.test.tick", "/test", {}, id="raw")
    inbox.handle("sub", event, lambda conn: conn.execute(text("UPDATE counters SET n = n + 10")))
    assert count(engine) == 10
    with engine.connect() as conn:
        assert conn.execute(select(inbox_table.c.subscription)).scalars().all() == ["sub"]


def test_a_nack_from_the_handler_rolls_back(engine: Engine) -> None:
    """ctx.nack() after writing discards the write and the inbox row; the redelivery counts once."""
    app = App("counter", database=engine)
    nacked: set[str] = set()

    @app.subscriber("count", topic="t", idempotent=True)
    def handle(event: Any, ctx: Context) -> None:
        bump(ctx)
        if event.get_id() not in nacked:
            nacked.add(event.get_id())
            ctx.nack()

    bus = Bus(MemoryBus())
    with running(bus, app):
        bus.publish(new_event("com.test.tick", "/test", {}, id="n1"), "t")
        wait_until(lambda: app.inbox is not None and app.inbox.stats.get("count") is not None
                   and app.inbox.stats["count"].handled == 1, what="the redelivery")  # fmt: skip
    bus.close()
    assert nacked == {"n1"}
    assert count(engine) == 1


def test_handling_prunes_once_prune_every_has_passed(engine: Engine) -> None:
    """Housekeeping runs after a commit once `prune_every` passed: the old row goes, the new stays."""
    now = [0.0]
    inbox = Inbox(engine, InboxSettings(window=10, prune_every=5), clock=lambda: now[0])
    inbox.setup()
    inbox.handle("sub", new_event("com.test.tick", "/test", {}, id="first"), lambda conn: None)
    now[0] = 20.0
    inbox.handle("sub", new_event("com.test.tick", "/test", {}, id="second"), lambda conn: None)
    with engine.connect() as conn:
        assert conn.execute(select(inbox_table.c.event_id)).scalars().all() == ["second"]


def test_bad_inbox_values_name_key_value_and_rule() -> None:
    """A negative window and a string prune interval are both reported, with their keys."""
    with pytest.raises(ConfigError) as failure:
        parse_inbox_settings({"url": "sqlite:///x.db", "prune_every": "often"})
    assert [p.field for p in failure.value.problems] == ["inbox.prune_every"]
    with pytest.raises(ConfigError, match=r"inbox\.window=-1\.0: must be > 0 seconds"):
        parse_inbox_settings({"window": -1})


def test_a_handler_rolling_back_the_transaction_is_a_failure(engine: Engine) -> None:
    """session.rollback() inside the handler would drop the inbox row: the delivery fails instead."""
    app = App("counter", database=engine)
    rolled: set[str] = set()

    @app.subscriber("count", topic="t", idempotent=True)
    def handle(event: Any, ctx: Context) -> None:
        assert ctx.session is not None
        ctx.session.execute(update(counters).values(n=counters.c.n + 1))
        if event.get_id() not in rolled:
            rolled.add(event.get_id())
            ctx.session.rollback()

    bus = Bus(MemoryBus())
    with running(bus, app):
        bus.publish(new_event("com.test.tick", "/test", {}, id="r1"), "t")
        wait_until(lambda: app.inbox is not None and app.inbox.stats.get("count") is not None
                   and app.inbox.stats["count"].handled == 1, what="the retry")  # fmt: skip
        stats = bus.subscriptions["count"].stats
    bus.close()
    assert count(engine) == 1
    assert "rolled back the inbox transaction" in (stats.last_error or "")
