"""The SQLite file under the durable bus: schema, opening, busy retries and lease owners.

Several processes may share one file. Every write is a ``BEGIN IMMEDIATE``
transaction (a writer waits for the write lock up front instead of failing
when it upgrades a read), SQLite's busy timeout waits for the lock, and
`retry` retries what still reports ``database is locked`` with backoff until
the busy timeout is used up, then raises AdapterError. Each bus instance is a
lease *owner* named host:pid:random; a process opening the file releases only
leases whose owner is a process of this host that no longer exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.errors import AdapterError, ConfigError, Problem

T = TypeVar("T")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        published_at REAL NOT NULL,
        body BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS messages_topic_time ON messages (topic, published_at)",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        name TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        filter TEXT,
        policy TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        sub TEXT NOT NULL,
        seq INTEGER NOT NULL,
        visible_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        pkey TEXT,
        lease INTEGER,
        owner TEXT,
        PRIMARY KEY (sub, seq)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS deliveries_visible ON deliveries (sub, visible_at, seq)",
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        sub TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (sub, seq)) WITHOUT ROWID""",
)
# Created after the columns they index exist (files from before leases had owners lack them).
INDEXES = (
    "CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq)",
    "CREATE INDEX IF NOT EXISTS dead_letters_seq ON dead_letters (seq)",
)

WAL_LIMIT_BYTES = 64 * 1024 * 1024
PRUNE_CHUNK = 2_000  # messages examined per prune transaction

#: Backoff jitter from a generator of its own: the global `random` stays the application's.
_JITTER = random.Random()


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (worth retrying)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry(path: Path, busy_timeout: float, action: str, attempt: Callable[[], T]) -> T:
    """Run `attempt`, retrying busy/locked refusals with jittered backoff up to `busy_timeout`."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise AdapterError(f"local durable bus {path}: {action} failed: {exc}") from exc
            if time.monotonic() >= deadline:
                raise AdapterError(
                    f"local durable bus {path}: {action} gave up after {busy_timeout:g} s "
                    f"(busy_timeout): another process kept the file locked ({exc})"
                ) from exc
            time.sleep(pause * (0.5 + _JITTER.random()))
            pause = min(pause * 2, 0.2)


def transaction(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run `body` in one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = body(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) the file in WAL mode with the schema in place."""
    db = sqlite3.connect(
        str(path), timeout=busy_timeout, check_same_thread=False, isolation_level=None
    )

    def setup() -> None:
        # Only takes effect on a new file: lets prune hand freed pages back to the OS.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        transaction(db, _create)

    try:
        retry(path, busy_timeout, "open", setup)
    except BaseException:
        db.close()
        raise
    return db


def _create(db: sqlite3.Connection) -> None:
    for statement in SCHEMA:
        db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
    for column, kind in (("lease", "INTEGER"), ("owner", "TEXT")):
        if column not in columns:
            db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} {kind}")
    for statement in INDEXES:
        db.execute(statement)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('subs_version', '0')")


def stored_format(db: sqlite3.Connection, path: Path, wanted: str) -> str:
    """The event format of this file's bodies: set when it is created, checked on every open.

    A file from before formats were stored holds JSON bodies.
    """
    row = db.execute("SELECT value FROM meta WHERE key = 'event_format'").fetchone()
    if row is None:
        has_events = db.execute("SELECT 1 FROM messages LIMIT 1").fetchone()
        stored = "json" if has_events else wanted
        db.execute("INSERT INTO meta VALUES ('event_format', ?)", (stored,))
    else:
        stored = row[0]
    if stored != wanted:
        raise ConfigError(
            "the durable bus file holds another event format",
            [
                Problem(
                    "local.event_format",
                    wanted,
                    f"{path} stores {stored} events: set {stored!r} or use a new path",
                )
            ],
        )
    return str(stored)


def new_owner() -> str:
    """A lease owner name unique to this bus instance: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_gone(owner: str) -> bool:
    """Whether `owner` was a process of this host that no longer runs (zombies count as gone).

    Owners on other hosts, or whose pid is alive (even if reused), are kept:
    their leases end by their deadline instead.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def release_dead_owners(db: sqlite3.Connection) -> int:
    """Make the leases of owners that are gone visible again at once; return how many."""
    owners = [
        r[0] for r in db.execute("SELECT DISTINCT owner FROM deliveries WHERE owner IS NOT NULL")
    ]
    released = 0
    for owner in owners:
        if owner_is_gone(owner):
            released += db.execute(
                "UPDATE deliveries SET visible_at = 0, lease = NULL, owner = NULL WHERE owner = ?",
                (owner,),
            ).rowcount
    return released


@dataclass
class Pruning:
    """One prune transaction: from `cursor` (a seq), drop acked events published before `cutoff`."""

    cursor: int
    cutoff: float

    def chunk(self, db: sqlite3.Connection) -> tuple[int, bool]:
        """Prune the next chunk; return how many went and whether the horizon or end was reached.

        Events with a delivery row (still pending) or a dead-letter row are kept.
        The newest pruned publish time is kept in meta as ``pruned_through``.
        """
        rows = db.execute(
            "SELECT seq, published_at FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
            (self.cursor, PRUNE_CHUNK),
        ).fetchall()
        old = [seq for seq, at in rows if at < self.cutoff]
        done = len(old) < len(rows) or len(rows) < PRUNE_CHUNK
        deleted: list[tuple[float]] = []
        if old:
            deleted = db.execute(
                "DELETE FROM messages AS m WHERE seq BETWEEN ? AND ? AND published_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = m.seq) "
                "AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.seq = m.seq) "
                "RETURNING published_at",
                (old[0], old[-1], self.cutoff),
            ).fetchall()
        if deleted:
            db.execute(
                "INSERT INTO meta VALUES ('pruned_through', ?) ON CONFLICT (key) DO UPDATE "
                "SET value = max(CAST(value AS REAL), CAST(excluded.value AS REAL))",
                (repr(max(at for (at,) in deleted)),),
            )
        self.cursor = 0 if done else old[-1]
        return len(deleted), done


def give_back_pages(db: sqlite3.Connection) -> None:
    """Return free pages to the OS once a quarter of the file is free (files made since pruning)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    if free * 4 > pages:
        db.execute("PRAGMA incremental_vacuum").fetchall()


def file_bytes(path: Path) -> tuple[int, int]:
    """Bytes on disk of the database file, and of its write-ahead log (with its index)."""
    sizes = []
    for suffixes in (("",), ("-wal", "-shm")):
        total = 0
        for suffix in suffixes:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(f"{path}{suffix}").st_size
        sizes.append(total)
    return sizes[0], sizes[1]


def policy_to_json(policy: DeliveryPolicy) -> str:
    """The subscription policy as stored in its row."""
    r = policy.retry
    return json.dumps(
        {
            "max_delivery_attempts": policy.max_delivery_attempts,
            "retry": [r.initial_backoff, r.max_backoff, r.multiplier, r.jitter],
            "dead_letter": policy.dead_letter,
            "ordered": policy.ordered,
            "ack_deadline": policy.ack_deadline,
        }
    )


def policy_from_json(text: str) -> DeliveryPolicy:
    """The subscription policy read back from its row."""
    raw = json.loads(text)
    return DeliveryPolicy(
        max_delivery_attempts=raw["max_delivery_attempts"],
        retry=RetryPolicy(*raw["retry"]),
        dead_letter=raw["dead_letter"],
        ordered=raw["ordered"],
        ack_deadline=raw["ack_deadline"],
    )


def backlog_figures(
    db: sqlite3.Connection, sub: str, now: float
) -> tuple[int, int, float | None, int]:
    """(waiting, leased, oldest unsettled publish time, dead letters) of a subscription.

    A row is leased while it has a lease whose deadline is in the future; an
    expired lease counts as waiting again, as the next receive takes it back.
    """
    waiting, leased, oldest = db.execute(
        "SELECT COALESCE(SUM(d.lease IS NULL OR d.visible_at <= ?), 0),"
        " COALESCE(SUM(d.lease IS NOT NULL AND d.visible_at > ?), 0), MIN(m.published_at)"
        " FROM deliveries d LEFT JOIN messages m ON m.seq = d.seq WHERE d.sub = ?",
        (now, now, sub),
    ).fetchone()
    dead = db.execute("SELECT COUNT(*) FROM dead_letters WHERE sub = ?", (sub,)).fetchone()[0]
    return int(waiting), int(leased), None if oldest is None else float(oldest), int(dead)
