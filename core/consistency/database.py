"""Database plumbing shared by the outbox, the relay and the journal.

- `make_engine(url)`: the one engine factory (SQLite: WAL, a busy timeout,
  ``BEGIN IMMEDIATE`` for `immediate` engines and `write_transaction`s);
  `open_database(url_or_engine)` validates and calls it.
- `is_postgres(engine)`.
- `Wakeups`: in-process wake-up signals keyed by database, so a relay in the
  writer's process wakes at once on commit (SQLite has no LISTEN/NOTIFY).
- `PgListener`: a psycopg connection LISTENing on a channel (PostgreSQL).
- `parse_duration` / `check_table`: config values (``"7d"``, ``3600``) and keys.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from polybus.core.config import check_keys
from polybus.core.errors import ConfigError, Problem

SQLITE_BUSY_TIMEOUT = 30.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def is_postgres(bind: Engine | Connection) -> bool:
    """True when the engine or connection talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


WRITE_OPTION = "polybus_write"  # execution option: begin with the write lock on SQLite


def make_engine(url: str | URL, *, immediate: bool = False, pool_size: int = 5) -> Engine:
    """The one engine factory of the consistency patterns.

    SQLite engines use WAL (a reader never blocks a commit) with
    ``synchronous=NORMAL`` (a commit survives a killed process; a power cut
    may lose the last ones) and wait up to 30 s for a lock. Transactions
    begin with ``BEGIN IMMEDIATE`` (the write lock up front, so concurrent
    writers queue instead of failing on a read-to-write upgrade) when the
    engine is `immediate` (the relay's claims) or the connection is marked by
    `write_transaction`; others begin deferred.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_size=pool_size, pool_pre_ping=True)
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN is issued below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and dbapi.in_transaction:  # left open by a failed statement
            dbapi.rollback()
        writes = immediate or conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def open_database(database: str | Engine) -> Engine:
    """An Engine for `database`: a URL (through `make_engine`) or an Engine, returned as it is."""
    if isinstance(database, Engine):
        return database
    if not isinstance(database, str) or "://" not in database:
        raise ConfigError(
            "invalid database",
            [
                Problem(
                    "database",
                    database,
                    "must be an SQLAlchemy URL (e.g. sqlite:///app.db) or Engine",
                )
            ],
        )
    return make_engine(database)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write (``BEGIN IMMEDIATE`` on SQLite); commits unless it raises."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions begin with the write lock on SQLite (caller closes it)."""
    conn = engine.connect()
    conn.execution_options(**{WRITE_OPTION: True})
    return conn


def database_key(bind: Engine | Connection | Session) -> str:
    """A key naming the database a bind writes to (the URL without password)."""
    if isinstance(bind, Session):
        bind = bind.connection()
    engine = bind.engine if isinstance(bind, Connection) else bind
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        from pathlib import Path

        return f"sqlite:{Path(url.database).resolve()}"
    return url.render_as_string(hide_password=True)


class Wakeups:
    """In-process wake-up events by database key: writers set, relays wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, list[threading.Event]] = {}

    def subscribe(self, key: str) -> threading.Event:
        """A new event set whenever `key` is notified."""
        flag = threading.Event()
        with self._lock:
            self._events.setdefault(key, []).append(flag)
        return flag

    def unsubscribe(self, key: str, flag: threading.Event) -> None:
        """Stop notifying `flag`."""
        with self._lock:
            flags = self._events.get(key, [])
            if flag in flags:
                flags.remove(flag)

    def notify(self, key: str) -> None:
        """Wake everything waiting on `key`."""
        with self._lock:
            flags = list(self._events.get(key, ()))
        for flag in flags:
            flag.set()


WAKEUPS = Wakeups()


def psycopg_conninfo(url: str | URL) -> str:
    """The libpq connection string of an SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PgListener:
    """A dedicated autocommit psycopg connection LISTENing on `channel`."""

    def __init__(self, url: str | URL, channel: str) -> None:
        import psycopg

        self._conn = psycopg.connect(psycopg_conninfo(url), autocommit=True)
        self._conn.execute(f"LISTEN {channel}")

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a notification; True when one came."""
        got = False
        for _note in self._conn.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    def close(self) -> None:
        """Close the connection (quietly: it may be broken already)."""
        with contextlib.suppress(Exception):
            self._conn.close()


def parse_duration(field: str, value: object) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"``."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid {field}", [Problem(field, value, "must be a duration")])
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ConfigError(
                f"invalid {field}",
                [Problem(field, value, "must be seconds or a number with s, m, h, d or w")],
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"invalid {field}", [Problem(field, value, "must be > 0")])
    return seconds


def check_table(
    name: str, table: Mapping[str, Any], allowed: Mapping[str, type | tuple[type, ...]]
) -> None:
    """Unknown keys (with a did-you-mean) and wrong types in a [name] table; `url` is required."""
    check_keys(name, table, allowed)
    if "url" in allowed and not str(table.get("url", "")).strip():
        raise ConfigError(
            f"invalid [{name}] settings",
            [Problem(f"{name}.url", table.get("url"), "required: an SQLAlchemy database URL")],
        )
