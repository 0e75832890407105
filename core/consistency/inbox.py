"""The idempotent inbox: a redelivered event takes effect exactly once.

Per subscription, the table ``polybus_inbox`` records every handled event by
(subscription, source, id). `Inbox.handle` begins a transaction, inserts the
event's row and runs the handler's work on that same connection, then commits
both together: an event whose row is already there is a duplicate (the work is
not run; the delivery is acked), and a failing handler rolls its writes back
with the row, so the event is retried normally. Two deliveries of one event at
once cannot both take effect: the primary key makes the second insert wait
for the first transaction (PostgreSQL) or for the database's write lock
(SQLite, whose transactions `open_database` starts with ``BEGIN IMMEDIATE``),
and then find the row.

Rows older than the deduplication window (`InboxSettings.window`, seven days
by default) are pruned at most every `prune_every` seconds, so an event
redelivered after the window is handled again.

`idempotent(handler, inbox, subscription)` wraps a bound handler: sync
handlers run everything in their worker thread; async handlers run on the
loop while the database calls go to a thread. The handler receives the
transaction as ``ctx.connection`` (an SQLAlchemy Connection) and
``ctx.session`` (an ORM Session joined to it, flushed before the commit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    String,
    Table,
    delete,
    insert,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from polybus.core.config import check_keys
from polybus.core.consistency.database import (  # re-exported: the inbox's public helpers
    open_database as open_database,
)
from polybus.core.consistency.database import write_connection, write_transaction
from polybus.core.consistency.tables import create_tables, metadata
from polybus.core.errors import ConfigError, Problem
from polybus.core.runtime.context import Context
from polybus.core.runtime.handlers import HandlerCall

log = logging.getLogger("polybus.inbox")

inbox_table = Table(
    "polybus_inbox",
    metadata,
    Column("subscription", String(200), primary_key=True),
    Column("source", String(1000), primary_key=True),
    Column("event_id", String(500), primary_key=True),
    Column("handled_at", Float, nullable=False),
    Index("polybus_inbox_handled_at", "handled_at"),
)

WEEK = 7 * 24 * 3600.0
INBOX_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "url": str,
    "window": (int, float),
    "prune_every": (int, float),
}


@dataclass(frozen=True)
class InboxSettings:
    """How long handled events are remembered, and how often old ones are pruned (seconds)."""

    window: float = WEEK
    prune_every: float = 60.0

    def __post_init__(self) -> None:
        problems = [
            Problem(f"inbox.{name}", value, "must be > 0 seconds")
            for name, value in (("window", self.window), ("prune_every", self.prune_every))
            if not value > 0
        ]
        if problems:
            raise ConfigError("invalid inbox settings", problems)


def parse_inbox_settings(table: Mapping[str, Any]) -> tuple[str | None, InboxSettings]:
    """The ``[inbox]`` table of polybus.toml: the database URL (if any) and the settings.

    Unknown keys fail with a did-you-mean; wrong types name key, value and rule.
    """
    check_keys("inbox", table, INBOX_KEYS)
    url = table.get("url")
    settings = InboxSettings(
        window=float(table.get("window", WEEK)), prune_every=float(table.get("prune_every", 60.0))
    )
    return (str(url) if url is not None else None), settings


@dataclass
class InboxStats:
    """Events handled and duplicates skipped by one subscription's inbox."""

    handled: int = 0
    duplicates: int = 0


class Inbox:
    """The handled-events table on one database, shared by the idempotent subscriptions of an App."""

    def __init__(
        self,
        engine: Engine,
        settings: InboxSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings or InboxSettings()
        self.clock = clock
        self.stats: dict[str, InboxStats] = {}
        self._lock = threading.Lock()
        self._last_prune = clock()

    def setup(self) -> None:
        """Create the polybus tables that are missing (idempotent)."""
        create_tables(self.engine)

    def begin(self, subscription: str, event: CloudEvent) -> Connection | None:
        """Open a transaction holding `event`'s inbox row; None (nothing open) for a duplicate."""
        conn = write_connection(self.engine)
        try:
            conn.begin()
            if self._claim(conn, subscription, event):
                return conn
            conn.rollback()
        except BaseException:
            conn.close()
            raise
        conn.close()
        self._count(subscription, duplicate=True)
        log.info(
            "%s: event %s from %s already handled; acked as a duplicate",
            subscription,
            event.get_id(),
            event.get_source(),
        )
        return None

    def finish(self, subscription: str, conn: Connection, *, commit: bool) -> None:
        """Commit (or roll back) the transaction `begin` opened, and close it."""
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()
        if commit:
            self._count(subscription, duplicate=False)
            self._maybe_prune()

    def handle(self, subscription: str, event: CloudEvent, work: Callable[[Connection], Any]) -> bool:
        """Run `work` in the event's inbox transaction; False (not run) for a duplicate."""
        conn = self.begin(subscription, event)
        if conn is None:
            return False
        try:
            work(conn)
        except BaseException:
            self.finish(subscription, conn, commit=False)
            raise
        self.finish(subscription, conn, commit=True)
        return True

    def prune(self, now: float | None = None) -> int:
        """Delete the rows older than the window; returns how many went."""
        cutoff = (self.clock() if now is None else now) - self.settings.window
        with write_transaction(self.engine) as conn:
            done = conn.execute(delete(inbox_table).where(inbox_table.c.handled_at < cutoff))
        return int(done.rowcount or 0)

    def _claim(self, conn: Connection, subscription: str, event: CloudEvent) -> bool:
        row = {
            "subscription": subscription,
            "source": event.get_source(),
            "event_id": event.get_id(),
            "handled_at": self.clock(),
        }
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):  # RETURNING says whether the row went in
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                claim: Any = sqlite_insert(inbox_table).values(row).on_conflict_do_nothing()
            else:
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                claim = pg_insert(inbox_table).values(row).on_conflict_do_nothing()
            done = conn.execute(claim.returning(inbox_table.c.event_id))
            return done.first() is not None
        try:  # other databases: a savepoint keeps the transaction usable after the conflict
            with conn.begin_nested():
                conn.execute(insert(inbox_table).values(row))
        except IntegrityError:
            return False
        return True

    def _count(self, subscription: str, *, duplicate: bool) -> None:
        with self._lock:
            stats = self.stats.setdefault(subscription, InboxStats())
            if duplicate:
                stats.duplicates += 1
            else:
                stats.handled += 1

    def _maybe_prune(self) -> None:
        now = self.clock()
        with self._lock:
            if now - self._last_prune < self.settings.prune_every:
                return
            self._last_prune = now
        try:
            pruned = self.prune(now)
        except Exception:  # pruning is housekeeping: the next round tries again
            log.exception("pruning the inbox failed")
            return
        if pruned:
            log.debug("pruned %d inbox row(s) older than %.0fs", pruned, self.settings.window)


def idempotent(handler: HandlerCall, inbox: Inbox, subscription: str) -> HandlerCall:
    """`handler` run inside the inbox transaction of `subscription` (see the module docstring)."""

    def attach(ctx: Context, conn: Connection) -> Session:
        session = Session(bind=conn)  # joins the open transaction; its commit() only flushes
        ctx.connection, ctx.session = conn, session
        return session

    def keep(ctx: Context) -> bool:
        return ctx.decision is None  # a nack or dead-letter from the handler rolls back

    def invoke_sync(event: CloudEvent, ctx: Context) -> None:
        conn = inbox.begin(subscription, event)
        if conn is None:
            return
        try:
            session = attach(ctx, conn)
            handler(event, ctx)
            _flush(session, conn)
        except BaseException:
            inbox.finish(subscription, conn, commit=False)
            raise
        inbox.finish(subscription, conn, commit=keep(ctx))

    async def invoke_async(event: CloudEvent, ctx: Context) -> None:
        conn = await asyncio.to_thread(inbox.begin, subscription, event)
        if conn is None:
            return
        try:
            session = attach(ctx, conn)
            await handler(event, ctx)
            await asyncio.to_thread(_flush, session, conn)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(inbox.finish, subscription, conn, commit=False))
            raise
        await asyncio.to_thread(inbox.finish, subscription, conn, commit=keep(ctx))

    invoke = invoke_async if handler.is_async else invoke_sync
    return HandlerCall(handler.name, handler.is_async, invoke)


def _flush(session: Session, conn: Connection) -> None:
    """Flush the handler's ORM work; fail when the handler rolled the inbox transaction back."""
    session.flush()
    session.close()
    if not conn.in_transaction():  # session.rollback() or conn.rollback() in the handler
        raise RuntimeError(
            "the handler rolled back the inbox transaction; raise instead (the event is retried)"
        )
