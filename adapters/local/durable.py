"""The embedded bus made durable with SQLite in WAL mode, shareable by several processes.

Published events and per-subscription delivery rows live in one database file,
so a backlog waits on disk rather than in memory, and after a crash (even
``kill -9``) every event that was not acknowledged is delivered again.
A lease is a row's ``visible_at`` time plus the lease id and owner that took
it: ack, nack, dead_letter and extend act only while the row still carries
that lease id, so settling a delivery whose lease expired and was taken again
does nothing (attempts are counted once per delivery), and a lease expiring on
the last allowed attempt dead-letters the event. Subscriptions live in the
file and every process re-reads them when another one changes them (a
``subs_version`` counter read in each write transaction). Acks are buffered
and written with the next database call: an ack lost in a crash means a
redelivery, never a loss (at-least-once). Acked events older than
`retention_seconds` are pruned; replay covers what is kept. Bodies are stored
in one CloudEvents event format per file (``event_format``), recorded in the
file and checked on every open. store.py holds the schema, busy retries and
lease owners.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.local import store
from polybus.core import codecs
from polybus.core.contract import BacklogStats, SubscriptionSpec
from polybus.core.events import AttributeView
from polybus.core.filters.dialects import Filter, Predicate, compile_filter, parse_filter, to_json
from polybus.core.poison import DECODE_ERRORS, REASON_LIMIT, undecodable_event

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_RETENTION_SECONDS = 86_400.0
DEFAULT_BUSY_TIMEOUT = 10.0
PRUNE_INTERVAL = 1.0  # seconds between prune passes started by publish
PRUNE_BUDGET = 0.2  # seconds one prune pass may spend before leaving the rest for the next


@dataclass(frozen=True)
class DurableStats:
    """What the durable file holds and how big it is on disk."""

    messages: int
    deliveries: int
    dead_letters: int
    subscriptions: int
    file_bytes: int  # the database file
    wal_bytes: int  # its write-ahead log, reused after each checkpoint
    retention_seconds: float
    pruned_through: datetime | None  # events published at or before this may be pruned


class DurableDelivery:
    """A delivery from the durable bus, valid while its row carries its lease id."""

    __slots__ = ("_bus", "_dead", "_lease", "_seq", "_sub", "attempt", "event")

    def __init__(
        self,
        bus: DurableBus,
        sub: str,
        seq: int,
        lease: int,
        attempt: int,
        event: CloudEvent,
        dead: bool,
    ) -> None:
        self._bus, self._sub, self._seq, self._lease, self._dead = bus, sub, seq, lease, dead
        self.attempt = attempt
        self.event = event

    def ack(self) -> None:
        """Remove the event for good (written with the next database call)."""
        self._bus._ack(self._sub, self._seq, self._lease, self._dead)

    def nack(self, delay: float = 0.0) -> None:
        """Redeliver after `delay` seconds, or dead-letter when attempts are used up."""
        if not self._dead:
            self._bus._nack(self._sub, self._seq, self._lease, self.attempt, max(0.0, delay))

    def dead_letter(self, reason: str) -> None:
        """Move to the dead-letter table now."""
        if not self._dead:
            self._bus._dead_letter(self._sub, self._seq, self._lease, self.attempt, reason)

    def extend(self, seconds: float) -> None:
        """Keep the event invisible for `seconds` more from now; a stale delivery stays stale."""
        if not self._dead:
            self._bus._extend(self._sub, self._seq, self._lease, seconds)


class DurableBus:
    """The SQLite-backed implementation of the adapter contract (provider name ``local``)."""

    name = "local"

    def __init__(
        self,
        path: str | Path,
        *,
        recover: bool = True,
        event_format: str = "json",
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self.retention_seconds = retention_seconds
        self.busy_timeout = busy_timeout
        self.owner = store.new_owner()
        self._db = store.connect(self.path, busy_timeout)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending_acks: list[tuple[str, int, int]] = []
        self._specs: dict[str, SubscriptionSpec] = {}
        self._matchers: dict[str, Predicate | None] = {}
        self._subs_version = ""
        self._prune_cursor = 0
        self._next_prune = 0.0
        self._closed = False
        try:
            self.event_format = self._write(
                "open", lambda db: store.stored_format(db, self.path, event_format)
            )
            if recover:  # processes of this host that held leases and are gone
                self._write("recover", store.release_dead_owners)
        except BaseException:
            self._db.close()
            raise
        chosen = codecs.event_format(self.event_format)
        self._encode, self._decode = chosen.encode, chosen.decode

    # transactions -------------------------------------------------------------

    def _write(self, action: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """One write transaction that first writes buffered acks and re-reads changed subscriptions.

        The caller holds `_cond` (or is the constructor); busy refusals are retried.
        """

        def attempt() -> T:
            def run(db: sqlite3.Connection) -> T:
                if self._pending_acks:
                    db.executemany(
                        "DELETE FROM deliveries WHERE sub = ? AND seq = ? AND lease = ?",
                        self._pending_acks,
                    )
                self._sync_specs(db)
                return body(db)

            result = store.transaction(self._db, run)
            self._pending_acks.clear()
            return result

        return store.retry(self.path, self.busy_timeout, action, attempt)

    def _read(self, action: str, body: Callable[[sqlite3.Connection], T]) -> T:
        return store.retry(self.path, self.busy_timeout, action, lambda: body(self._db))

    def _sync_specs(self, db: sqlite3.Connection) -> None:
        """Reload subscriptions when any process changed them since we last looked."""
        version = db.execute("SELECT value FROM meta WHERE key = 'subs_version'").fetchone()[0]
        if version == self._subs_version:
            return
        self._specs.clear()
        self._matchers.clear()
        for name, topic, flt, policy in db.execute(
            "SELECT name, topic, filter, policy FROM subscriptions"
        ):
            flt_obj = parse_filter(json.loads(flt)) if flt else None
            spec = SubscriptionSpec(name, topic, flt_obj, store.policy_from_json(policy))
            self._specs[name] = spec
            self._matchers[name] = compile_filter(flt_obj) if flt_obj else None
        self._subs_version = version

    @staticmethod
    def _bump_subs_version(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'subs_version'")

    # contract ---------------------------------------------------------------

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Store the events and a delivery row per matching subscription, in one transaction.

        The subscriptions are read inside the transaction, so a subscription any
        process created before this publish gets these events.
        """
        if not events:
            return
        bodies = [self._encode(e) for e in events]

        def body(db: sqlite3.Connection) -> bool:
            subs = [(n, s, self._matchers[n]) for n, s in self._specs.items() if s.topic == topic]
            now = time.time()
            first = db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0] + 1
            db.executemany(
                "INSERT INTO messages (seq, topic, published_at, body) VALUES (?, ?, ?, ?)",
                [(first + i, topic, now, b) for i, b in enumerate(bodies)],
            )
            rows = []
            for i, event in enumerate(events):
                attrs = None
                for name, spec, match in subs:
                    if match is not None:
                        attrs = attrs or AttributeView(event)
                        if not match(attrs):
                            continue
                    key = (
                        event.get_attributes().get("partitionkey") if spec.policy.ordered else None
                    )
                    rows.append((name, first + i, 0.0, None if key is None else str(key)))
            if rows:
                db.executemany(
                    "INSERT INTO deliveries (sub, seq, visible_at, pkey) VALUES (?, ?, ?, ?)",
                    rows,
                )
            return bool(rows)

        with self._cond:
            if self._write("publish", body):
                self._cond.notify_all()
        if time.monotonic() >= self._next_prune:
            self.prune(budget=PRUNE_BUDGET)

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update the subscription row; every filter is evaluated locally."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO subscriptions (name, topic, filter, policy) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, "
                "filter = excluded.filter, policy = excluded.policy",
                (
                    spec.name,
                    spec.topic,
                    json.dumps(to_json(spec.filter)) if spec.filter else None,
                    store.policy_to_json(spec.policy),
                ),
            )
            self._bump_subs_version(db)

        with self._cond:
            self._write("provision", body)
        return None

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[DurableDelivery]:
        """Lease up to `max_events` visible rows, waiting up to `timeout` for the first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._spec(subscription)
            first = True  # try at once; while idle, look with a read before taking the write lock
            while True:
                if first or self._pending_acks or self._visible(subscription):
                    first = False
                    taken = self._write(
                        "receive", lambda db: self._lease(db, subscription, max_events)
                    )
                    if taken:
                        return taken
                if time.monotonic() >= deadline:
                    return []
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _visible(self, subscription: str) -> bool:
        """A cheap read: is any row of the subscription visible now? (spares a write lock)."""
        row = self._read(
            "receive",
            lambda db: db.execute(
                "SELECT 1 FROM deliveries WHERE sub = ? AND visible_at <= ? LIMIT 1",
                (subscription, time.time()),
            ).fetchone(),
        )
        return row is not None

    def _lease(self, db: sqlite3.Connection, name: str, max_events: int) -> list[DurableDelivery]:
        spec = self._specs.get(name)
        if spec is None:  # deleted by another process meanwhile
            return []
        now = time.time()
        lease = secrets.randbits(62)
        params = (now + spec.policy.ack_deadline, lease, self.owner, name)
        update = (
            "UPDATE deliveries SET visible_at = ?, attempts = attempts + 1, lease = ?, owner = ? "
            "WHERE sub = ? AND seq IN "
        )
        if spec.policy.ordered:
            # Per partition key, the oldest row, only if nothing of that key is leased or delayed.
            leased = db.execute(
                update + "(SELECT seq FROM deliveries d WHERE sub = ? AND visible_at <= ? AND ("
                " pkey IS NULL OR seq = (SELECT MIN(seq) FROM deliveries e WHERE e.sub = d.sub"
                " AND e.pkey = d.pkey)) ORDER BY seq LIMIT ?) RETURNING seq, attempts",
                (*params, name, now, max_events),
            ).fetchall()
        else:
            leased = db.execute(
                update + "(SELECT seq FROM deliveries WHERE sub = ? AND visible_at <= ? "
                "ORDER BY visible_at, seq LIMIT ?) RETURNING seq, attempts",
                (*params, name, now, max_events),
            ).fetchall()
        limit = spec.policy.max_delivery_attempts
        # Nack dead-letters on the last attempt, so a row past the limit is one whose
        # lease expired (or whose owner died) on its last attempt: dead-letter it now.
        exhausted = [seq for seq, attempts in leased if attempts > limit]
        if exhausted:
            reason = f"lease expired on the last allowed attempt ({limit})"
            db.executemany(
                "DELETE FROM deliveries WHERE sub = ? AND seq = ?", [(name, s) for s in exhausted]
            )
            db.executemany(
                "INSERT OR REPLACE INTO dead_letters (sub, seq, attempts, reason) "
                "VALUES (?, ?, ?, ?)",
                [(name, s, limit, reason) for s in exhausted],
            )
        leased = sorted((s, a) for s, a in leased if a <= limit)
        if not leased:
            return []
        marks = ",".join("?" * len(leased))
        bodies = dict(
            db.execute(
                f"SELECT seq, body FROM messages WHERE seq IN ({marks})",
                [s for s, _ in leased],
            ).fetchall()
        )
        deliveries, poison = [], []
        for seq, attempts in leased:
            try:
                event = self._decode(bodies[seq])
            except DECODE_ERRORS as exc:  # a poison row goes alone, the rest are delivered
                poison.append((name, seq, attempts, f"undecodable: {type(exc).__name__}: {exc}"))
                continue
            deliveries.append(DurableDelivery(self, name, seq, lease, attempts, event, False))
        if poison:
            db.executemany(
                "DELETE FROM deliveries WHERE sub = ? AND seq = ?",
                [(n, s) for n, s, _, _ in poison],
            )
            db.executemany(
                "INSERT OR REPLACE INTO dead_letters (sub, seq, attempts, reason) "
                "VALUES (?, ?, ?, ?)",
                [(n, s, a, r[:REASON_LIMIT]) for n, s, a, r in poison],
            )
        return deliveries

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[DurableDelivery]:
        """Dead-lettered events; ack removes them."""
        with self._cond:
            self._write("receive dead letters", lambda db: None)
            rows = self._read(
                "receive dead letters",
                lambda db: db.execute(
                    "SELECT d.seq, d.attempts, m.body FROM dead_letters d JOIN messages m "
                    "ON m.seq = d.seq WHERE d.sub = ? ORDER BY d.seq LIMIT ?",
                    (subscription, max_events),
                ).fetchall(),
            )
        return [
            DurableDelivery(
                self, subscription, s, 0, a, self._decode_dead(subscription, s, b), True
            )
            for s, a, b in rows
        ]

    def _decode_dead(self, subscription: str, seq: int, body: bytes) -> CloudEvent:
        """A dead letter's event, or the undecodable stand-in holding its raw bytes."""
        try:
            return self._decode(body)
        except DECODE_ERRORS as exc:
            raw = bytes(body)
            reason = f"undecodable: {type(exc).__name__}: {exc}"
            return undecodable_event(f"{subscription}-{seq}", "/polybus/local", raw, reason)

    def dead_letter_reasons(self, subscription: str) -> list[str]:
        """Why each dead-lettered event of the subscription was dead-lettered."""
        with self._cond:
            rows = self._read(
                "read dead letters",
                lambda db: db.execute(
                    "SELECT reason FROM dead_letters WHERE sub = ? ORDER BY seq", (subscription,)
                ).fetchall(),
            )
        return [r[0] for r in rows]

    def delete_subscription(self, subscription: str) -> None:
        """Remove the subscription with its delivery and dead-letter rows."""

        def body(db: sqlite3.Connection) -> None:
            for table, column in (
                ("subscriptions", "name"),
                ("deliveries", "sub"),
                ("dead_letters", "sub"),
            ):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (subscription,))
            self._bump_subs_version(db)

        with self._cond:
            self._write("delete subscription", body)

    def replay(self, subscription: str, since: datetime) -> None:
        """Queue again every kept event of the topic published at or after `since`.

        Acked events older than `retention_seconds` are pruned: a replay from
        before the pruning horizon replays what is kept and logs a warning
        naming the horizon (`stats().pruned_through`).
        """
        cutoff = since.timestamp()

        def body(db: sqlite3.Connection) -> int:
            spec = self._specs.get(subscription)
            if spec is None:
                raise KeyError(f"no subscription named {subscription!r}")
            match = self._matchers[subscription]
            rows = db.execute(
                "SELECT seq, body FROM messages WHERE topic = ? AND published_at >= ?",
                (spec.topic, cutoff),
            ).fetchall()
            keep = [
                (subscription, seq)
                for seq, raw in rows
                if match is None or match(AttributeView(self._decode(raw)))
            ]
            db.executemany(
                "INSERT INTO deliveries (sub, seq, visible_at) VALUES (?, ?, 0) "
                "ON CONFLICT (sub, seq) DO UPDATE SET visible_at = 0, attempts = 0, "
                "lease = NULL, owner = NULL",
                keep,
            )
            return len(keep)

        with self._cond:
            self._spec(subscription)
            replayed = self._write("replay", body)
            self._cond.notify_all()
        horizon = self._pruned_through()
        if horizon is not None and cutoff <= horizon:
            log.warning(
                "replay of %r from %s: acked events published up to %s were pruned "
                "(retention_seconds=%g); replayed the %d kept",
                subscription,
                since.isoformat(),
                datetime.fromtimestamp(horizon, UTC).isoformat(),
                self.retention_seconds,
                replayed,
            )

    def backlog(self, subscription: str) -> int:
        """Events waiting or in flight for the subscription."""
        with self._cond:
            row = self._write(
                "backlog",
                lambda db: db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE sub = ?", (subscription,)
                ).fetchone(),
            )
        return int(row[0])

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """Waiting, leased, oldest unsettled age and dead letters, from the file's tables."""
        now = time.time()
        with self._cond:  # _spec may write: every use of the shared connection holds the lock
            self._spec(subscription)  # an unknown name is a KeyError, as in backlog()
            waiting, leased, oldest, dead = self._write(
                "backlog", lambda db: store.backlog_figures(db, subscription, now)
            )
        age = None if oldest is None else max(0.0, now - oldest)
        return BacklogStats(subscription, waiting, leased, age, dead)

    def subscriptions(self) -> list[str]:
        """The names of the subscriptions in the file."""
        with self._cond:
            rows = self._write(
                "subscriptions", lambda db: db.execute("SELECT name FROM subscriptions").fetchall()
            )
        return sorted(str(name) for (name,) in rows)

    def close(self) -> None:
        """Write buffered acks, make this bus's unsettled deliveries visible again, close."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            try:
                self._write(
                    "close",
                    lambda db: db.execute(
                        "UPDATE deliveries SET visible_at = 0, lease = NULL, owner = NULL "
                        "WHERE owner = ?",
                        (self.owner,),
                    ),
                )
            finally:
                self._db.close()

    # retention and size ---------------------------------------------------------

    def prune(self, budget: float = float("inf")) -> int:
        """Delete acked events published more than `retention_seconds` ago; return how many.

        Works in short transactions (store.PRUNE_CHUNK messages each) so other processes
        interleave, stopping after `budget` seconds (the next pass resumes there).
        Events still waiting for a subscription or dead-lettered are kept.
        """
        started = time.monotonic()
        self._next_prune = started + PRUNE_INTERVAL  # other publishers do not start one meanwhile
        removed = 0
        while time.monotonic() - started < budget:
            prune = store.Pruning(self._prune_cursor, time.time() - self.retention_seconds)
            with self._cond:
                if self._closed:
                    break
                deleted, done = self._write("prune", prune.chunk)
            self._prune_cursor = prune.cursor
            removed += deleted
            if done:
                break
        if removed:
            with self._cond:
                if not self._closed:
                    self._read("vacuum", store.give_back_pages)
        # A long pass (many old events still pending) waits longer: pruning stays < ~10% of time.
        self._next_prune = started + max(PRUNE_INTERVAL, 10 * (time.monotonic() - started))
        return removed

    def _pruned_through(self) -> float | None:
        with self._cond:
            row = self._read(
                "stats",
                lambda db: db.execute(
                    "SELECT value FROM meta WHERE key = 'pruned_through'"
                ).fetchone(),
            )
        return None if row is None else float(row[0])

    def stats(self) -> DurableStats:
        """Rows per table, bytes on disk and the pruning horizon."""

        def body(db: sqlite3.Connection) -> tuple[int, ...]:
            return tuple(
                db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("messages", "deliveries", "dead_letters", "subscriptions")
            )

        with self._cond:
            messages, deliveries, dead, subs = self._write("stats", body)
        horizon = self._pruned_through()
        db_bytes, wal_bytes = store.file_bytes(self.path)
        return DurableStats(
            messages=messages,
            deliveries=deliveries,
            dead_letters=dead,
            subscriptions=subs,
            file_bytes=db_bytes,
            wal_bytes=wal_bytes,
            retention_seconds=self.retention_seconds,
            pruned_through=None if horizon is None else datetime.fromtimestamp(horizon, UTC),
        )

    # internals --------------------------------------------------------------

    def _spec(self, subscription: str) -> SubscriptionSpec:
        """The subscription's spec; re-reads the file once when another process made it.

        The caller holds `_cond`: the re-read is a write on the shared connection, and
        two transactions interleaved on it roll each other back.
        """
        spec = self._specs.get(subscription)
        if spec is None:
            self._write("read subscriptions", lambda db: None)
            spec = self._specs.get(subscription)
        if spec is None:
            raise KeyError(f"no subscription named {subscription!r}")
        return spec

    def _ack(self, sub: str, seq: int, lease: int, dead: bool) -> None:
        with self._cond:
            if dead:
                self._write(
                    "ack dead letter",
                    lambda db: db.execute(
                        "DELETE FROM dead_letters WHERE sub = ? AND seq = ?", (sub, seq)
                    ),
                )
            else:
                self._pending_acks.append((sub, seq, lease))

    def _nack(self, sub: str, seq: int, lease: int, attempt: int, delay: float) -> None:
        with self._cond:
            spec = self._specs.get(sub)
            if spec is not None and attempt >= spec.policy.max_delivery_attempts:
                reason = f"max delivery attempts ({attempt}) reached"
                self._write("dead-letter", self._dead_letter_body(sub, seq, lease, attempt, reason))
                return
            self._write(
                "nack",
                lambda db: db.execute(
                    "UPDATE deliveries SET visible_at = ?, lease = NULL, owner = NULL "
                    "WHERE sub = ? AND seq = ? AND lease = ?",
                    (time.time() + delay, sub, seq, lease),
                ),
            )
            self._cond.notify_all()

    def _dead_letter(self, sub: str, seq: int, lease: int, attempt: int, reason: str) -> None:
        with self._cond:
            self._write("dead-letter", self._dead_letter_body(sub, seq, lease, attempt, reason))

    @staticmethod
    def _dead_letter_body(
        sub: str, seq: int, lease: int, attempt: int, reason: str
    ) -> Callable[[sqlite3.Connection], None]:
        def body(db: sqlite3.Connection) -> None:
            gone = db.execute(
                "DELETE FROM deliveries WHERE sub = ? AND seq = ? AND lease = ?", (sub, seq, lease)
            ).rowcount
            if gone:  # still ours: a stale delivery's dead_letter does nothing
                db.execute(
                    "INSERT OR REPLACE INTO dead_letters (sub, seq, attempts, reason) "
                    "VALUES (?, ?, ?, ?)",
                    (sub, seq, attempt, reason),
                )

        return body

    def _extend(self, sub: str, seq: int, lease: int, seconds: float) -> None:
        with self._cond:
            self._write(
                "extend",
                lambda db: db.execute(
                    "UPDATE deliveries SET visible_at = ? WHERE sub = ? AND seq = ? AND lease = ?",
                    (time.time() + max(0.0, seconds), sub, seq, lease),
                ),
            )
