"""The transactional outbox: events written in the caller's own database transaction.

    outbox = Outbox(engine)
    with Session(engine) as session, session.begin():
        session.add(Order(...))
        with outbox.transaction(session) as tx:
            tx.publish(new_event("order.placed", "/shop", {...}), topic="orders")
    # committed: the order and its event, or (rolled back) neither

A row keeps the event in the CloudEvents JSON format (any data type round-trips:
JSON values, text, bytes), its topic, its ``partitionkey`` extension (None when
absent) and a monotonically increasing id. `Outbox.transaction` never commits:
the caller's transaction decides. On PostgreSQL it sends ``NOTIFY
polybus_outbox`` in that transaction (delivered on commit) to wake relays; in
the writer's own process a relay on the same SQLite database is woken on commit.

Published rows stay as the event journal until the relay prunes them
(`retention`); `Outbox.replay_events(topic, since)` reads them back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from polybus.core.consistency.database import WAKEUPS, database_key, is_postgres
from polybus.core.consistency.tables import create_tables, metadata
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.errors import Problem, ValidationError
from polybus.core.events import validate_event
from polybus.core.formats import from_json, to_json

CHANNEL = "polybus_outbox"
PARTITION_KEY = "partitionkey"

outbox_table = Table(
    "polybus_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("partition_key", String(255), nullable=True),
    Column("event_id", String(255), nullable=False),
    Column("event", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("published_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
)
# Partial indexes, so published rows (the journal) never slow a claim down: pending
# rows in id order, and the few pending rows that can hold their key back (leased
# or failed before; see relay.Relay.claim).
_PENDING = outbox_table.c.published_at.is_(None)
BLOCKING = and_(_PENDING, or_(outbox_table.c.lease_owner.is_not(None), outbox_table.c.attempts > 0))
Index("ix_polybus_outbox_pending", outbox_table.c.id, postgresql_where=_PENDING, sqlite_where=_PENDING)
Index(
    "ix_polybus_outbox_blocking",
    outbox_table.c.partition_key,
    outbox_table.c.id,
    postgresql_where=BLOCKING,
    sqlite_where=BLOCKING,
)
Index("ix_polybus_outbox_journal", outbox_table.c.topic, outbox_table.c.published_at)


def encode(event: CloudEvent) -> bytes:
    """The stored form of an event: the CloudEvents JSON format."""
    return to_json(event)


def decode(raw: bytes) -> CloudEvent:
    """An event from its stored form."""
    return from_json(bytes(raw))


def partition_key(event: CloudEvent) -> str | None:
    """The event's ``partitionkey`` extension as text, or None."""
    value = event.get_extension(PARTITION_KEY)
    return None if value is None else str(value)


@dataclass
class OutboxTransaction:
    """Publishes into the outbox through one caller-owned connection (see `Outbox.transaction`)."""

    connection: Connection
    clock: Callable[[], float]
    on_commit: Callable[[], None]
    written: list[str] = field(default_factory=list)
    _notified: bool = False

    def publish(self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC) -> None:
        """Write one event or a batch to the outbox in the caller's transaction (nothing is sent yet)."""
        batch = [events] if isinstance(events, CloudEvent) else list(events)
        if not batch:
            return
        if not isinstance(topic, str) or not topic.strip():
            raise ValidationError("invalid outbox publish", [Problem("topic", topic, "must be a non-empty name")])
        now = self.clock()
        rows: list[dict[str, object]] = []
        ids: list[str] = []
        for item in batch:
            if not isinstance(item, CloudEvent):
                raise TypeError(f"expected a CloudEvent, got {type(item).__name__}")
            validate_event(item)
            ids.append(item.get_id())
            rows.append(
                {
                    "topic": topic,
                    "partition_key": partition_key(item),
                    "event_id": item.get_id(),
                    "event": encode(item),
                    "created_at": now,
                    "attempts": 0,
                    "next_attempt_at": 0.0,
                }
            )
        self.connection.execute(insert(outbox_table), rows)
        self.written.extend(ids)
        if not self._notified:
            self._notified = True
            if is_postgres(self.connection):  # delivered to LISTENing relays on commit
                self.connection.exec_driver_sql(f"NOTIFY {CHANNEL}")
            else:
                self.on_commit()


class Outbox:
    """Writes events into the outbox table inside callers' transactions; reads the journal back."""

    def __init__(self, engine: Engine, *, create: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        if create:
            create_tables(engine)

    @contextlib.contextmanager
    def transaction(self, bind: Connection | Session) -> Iterator[OutboxTransaction]:
        """Yield a writer bound to the caller's Connection or Session transaction; never commits."""
        if isinstance(bind, Session):
            connection = bind.connection()
            key = database_key(connection)

            def on_commit() -> None:
                event.listen(bind, "after_commit", lambda _s: WAKEUPS.notify(key), once=True)

        elif isinstance(bind, Connection):
            connection = bind
            key = database_key(connection)

            def on_commit() -> None:
                event.listen(bind, "commit", lambda _c: WAKEUPS.notify(key), once=True)

        else:
            raise TypeError(f"expected an SQLAlchemy Connection or Session, got {type(bind).__name__}")
        yield OutboxTransaction(connection, self.clock, on_commit)

    def pending(self) -> int:
        """Rows not yet published."""
        query = select(func.count()).select_from(outbox_table).where(_PENDING)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        """Release the engine's pooled connections (the outbox stays usable: it reconnects)."""
        self.engine.dispose()

    def replay_events(self, topic: str, since: datetime) -> list[CloudEvent]:
        """Published events of `topic` published at or after `since`, in outbox order."""
        query = (
            select(outbox_table.c.event)
            .where(
                outbox_table.c.topic == topic,
                outbox_table.c.published_at.is_not(None),
                outbox_table.c.published_at >= since.timestamp(),
            )
            .order_by(outbox_table.c.id)
        )
        with self.engine.connect() as conn:
            return [decode(raw) for (raw,) in conn.execute(query)]
