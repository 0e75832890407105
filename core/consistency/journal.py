"""The event journal: every event any Bus published, kept for `retention`, read back for replay.

    [journal]                       # in polybus.toml, beside the provider's table
    url = "sqlite:///journal.db"    # any SQLAlchemy URL (PostgreSQL: postgresql+psycopg://...)
    retention = "7d"                # seconds, or a number with s, m, h, d or w (default 7d)

`JournalPlugin` implements the `polybus_after_publish` hook: each batch the
provider accepted is appended to the ``polybus_journal`` table (events being
replayed, marked with the ``polybusreplay`` extension, are not recorded
again), and rows older than the retention are pruned at most once a minute.
`Bus.replay` finds the plugin among the bus's hooks and replays from it when
the provider cannot replay natively (see core/bus.py). `install_journal(pm,
config)` registers the plugin when the configuration has a [journal] table;
`connect_with_journal(config)` is `polybus.adapters.connect` with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import URL

from polybus.core.bus import REPLAY_EXTENSION
from polybus.core.config import Config, load_config
from polybus.core.consistency.database import check_table, make_engine, parse_duration
from polybus.core.consistency.outbox import decode, encode
from polybus.core.consistency.tables import create_tables, metadata
from polybus.core.hookspecs import hookimpl

if TYPE_CHECKING:
    import pluggy

    from polybus.core.bus import Bus

TABLE = "journal"
DEFAULT_RETENTION = 7 * 86400.0
PRUNE_INTERVAL = 60.0
KEYS: dict[str, type | tuple[type, ...]] = {"url": str, "retention": (int, float, str)}

journal_table = Table(
    "polybus_journal",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("event", LargeBinary, nullable=False),
)
Index("ix_polybus_journal_topic_time", journal_table.c.topic, journal_table.c.recorded_at)


@dataclass(frozen=True)
class JournalSettings:
    """The [journal] table: where the journal lives and how long it keeps events."""

    url: str
    retention: float = DEFAULT_RETENTION


def parse_journal(table: Mapping[str, Any]) -> JournalSettings:
    """Validate a [journal] table: known keys (did-you-mean), a URL, a positive retention."""
    check_table(TABLE, table, KEYS)
    retention = parse_duration("journal.retention", table.get("retention", DEFAULT_RETENTION))
    return JournalSettings(str(table["url"]), retention)


class Journal:
    """An append-only table of published events with retention."""

    def __init__(
        self,
        db: str | URL | Engine,
        *,
        retention: float | None = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = db if isinstance(db, Engine) else make_engine(db)
        self.retention = retention
        self.clock = clock
        create_tables(self.engine)

    def record(self, events: Sequence[CloudEvent], topic: str) -> int:
        """Append the events (except replays) published to `topic`; returns rows written."""
        now = self.clock()
        rows = [
            {"topic": topic, "event_id": e.get_id(), "recorded_at": now, "event": encode(e)}
            for e in events
            if e.get_extension(REPLAY_EXTENSION) is None
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(journal_table), rows)
        return len(rows)

    def replay_events(self, topic: str, since: datetime) -> list[CloudEvent]:
        """Events of `topic` recorded at or after `since`, in the order they were recorded."""
        query = (
            select(journal_table.c.event)
            .where(journal_table.c.topic == topic, journal_table.c.recorded_at >= since.timestamp())
            .order_by(journal_table.c.id)
        )
        with self.engine.connect() as conn:
            return [decode(raw) for (raw,) in conn.execute(query)]

    def count(self, topic: str | None = None) -> int:
        """Rows kept (of `topic`, or all)."""
        query = select(func.count()).select_from(journal_table)
        if topic is not None:
            query = query.where(journal_table.c.topic == topic)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prune(self) -> int:
        """Delete rows older than the retention; returns rows deleted."""
        if self.retention is None:
            return 0
        horizon = self.clock() - self.retention
        with self.engine.begin() as conn:
            result = conn.execute(delete(journal_table).where(journal_table.c.recorded_at < horizon))
        return int(result.rowcount)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()


class JournalPlugin:
    """Records every batch a Bus published into a `Journal` (the `polybus_after_publish` hook)."""

    name = "polybus-journal"

    def __init__(self, journal: Journal, prune_interval: float = PRUNE_INTERVAL) -> None:
        self.journal = journal
        self.prune_interval = prune_interval
        self._next_prune = 0.0
        self._lock = threading.Lock()

    @hookimpl
    def polybus_after_publish(self, events: Sequence[CloudEvent], topic: str) -> None:
        """Append the accepted batch to the journal; prune now and then."""
        self.journal.record(events, topic)
        now = time.monotonic()
        with self._lock:
            due = now >= self._next_prune
            if due:
                self._next_prune = now + self.prune_interval
        if due:
            self.journal.prune()

    def replay_events(self, topic: str, since: datetime) -> list[CloudEvent]:
        """The journal's events of `topic` since `since` (what `Bus.replay` republishes)."""
        return self.journal.replay_events(topic, since)

    def close(self) -> None:
        """Release the journal's database connections (a later publish opens new ones)."""
        self.journal.close()


def journal_plugin(config: Config) -> JournalPlugin | None:
    """The plugin configured by the [journal] table, or None without one."""
    table = config.providers.get(TABLE)
    if table is None:
        return None
    settings = parse_journal(table)
    return JournalPlugin(Journal(settings.url, retention=settings.retention))


def install_journal(pm: pluggy.PluginManager, config: Config) -> JournalPlugin | None:
    """Register the configured journal plugin on `pm` (once); None without a [journal] table."""
    existing = pm.get_plugin(JournalPlugin.name)
    if isinstance(existing, JournalPlugin):
        return existing
    plugin = journal_plugin(config)
    if plugin is not None:
        pm.register(plugin, name=JournalPlugin.name)
    return plugin


def connect_with_journal(
    config: Config | str | None = None, *, provider: str | None = None
) -> Bus:
    """`polybus.adapters.connect`, with the [journal] plugin registered when configured."""
    from polybus.adapters import connect, plugin_manager

    if not isinstance(config, Config):
        config = load_config(config)
    pm = plugin_manager()
    install_journal(pm, config)
    return connect(config, provider=provider, pm=pm)
