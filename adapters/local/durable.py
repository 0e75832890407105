"""The embedded bus made durable with SQLite in WAL mode.

Published events and per-subscription delivery rows live in one database file,
so a backlog waits on disk rather than in memory, and after a crash (even
``kill -9``) every event that was not acknowledged is delivered again.
Leases are rows' ``visible_at`` times; on open, leases left by a dead process
are released at once (one process owns a database file). Acks are buffered and
written with the next receive, publish or close: an ack lost in a crash means a
redelivery, never a loss (at-least-once). Bodies are stored in one CloudEvents
event format per file (``event_format``: JSON by default, or Avro, Avro
Compact, Protobuf), recorded in the file and checked on every open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cloudevents.core.v1.event import CloudEvent

from polybus.core import codecs
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.errors import ConfigError, Problem
from polybus.core.events import AttributeView
from polybus.core.filters.dialects import Filter, Predicate, compile_filter, parse_filter, to_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    published_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_topic_time ON messages (topic, published_at);
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    filter TEXT,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    sub TEXT NOT NULL,
    seq INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pkey TEXT,
    PRIMARY KEY (sub, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_visible ON deliveries (sub, visible_at, seq);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    sub TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (sub, seq)
) WITHOUT ROWID;
"""


class DurableDelivery:
    """A delivery from the durable bus."""

    __slots__ = ("_bus", "_dead", "_seq", "_sub", "attempt", "event")

    def __init__(
        self, bus: DurableBus, sub: str, seq: int, attempt: int, event: CloudEvent, dead: bool
    ) -> None:
        self._bus, self._sub, self._seq, self._dead = bus, sub, seq, dead
        self.attempt = attempt
        self.event = event

    def ack(self) -> None:
        """Remove the event for good (written with the next database call)."""
        self._bus._ack(self._sub, self._seq, self._dead)

    def nack(self, delay: float = 0.0) -> None:
        """Redeliver after `delay` seconds, or dead-letter when attempts are used up."""
        if not self._dead:
            self._bus._nack(self._sub, self._seq, self.attempt, max(0.0, delay))

    def dead_letter(self, reason: str) -> None:
        """Move to the dead-letter table now."""
        if not self._dead:
            self._bus._dead_letter(self._sub, self._seq, self.attempt, reason)


def _policy_to_json(policy: DeliveryPolicy) -> str:
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


def _policy_from_json(text: str) -> DeliveryPolicy:
    raw = json.loads(text)
    return DeliveryPolicy(
        max_delivery_attempts=raw["max_delivery_attempts"],
        retry=RetryPolicy(*raw["retry"]),
        dead_letter=raw["dead_letter"],
        ordered=raw["ordered"],
        ack_deadline=raw["ack_deadline"],
    )


class DurableBus:
    """The SQLite-backed implementation of the adapter contract (provider name ``local``)."""

    name = "local"

    def __init__(
        self, path: str | Path, *, recover: bool = True, event_format: str = "json"
    ) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.event_format = self._stored_format(event_format)
        chosen = codecs.event_format(self.event_format)
        self._encode, self._decode = chosen.encode, chosen.decode
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending_acks: list[tuple[str, int]] = []
        self._specs: dict[str, SubscriptionSpec] = {}
        self._matchers: dict[str, Predicate | None] = {}
        for name, topic, flt, policy in self._db.execute(
            "SELECT name, topic, filter, policy FROM subscriptions"
        ):
            spec = SubscriptionSpec(
                name,
                topic,
                parse_filter(json.loads(flt)) if flt else None,
                _policy_from_json(policy),
            )
            self._remember(spec)
        if recover:  # the process that held these leases is gone
            self._db.execute("UPDATE deliveries SET visible_at = 0 WHERE visible_at > 0")

    def _stored_format(self, wanted: str) -> str:
        """The event format of this file's bodies: set when it is created, checked on every open.

        A file from before formats were stored holds JSON bodies.
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = 'event_format'").fetchone()
        if row is None:
            has_events = self._db.execute("SELECT 1 FROM messages LIMIT 1").fetchone()
            stored = "json" if has_events else wanted
            self._db.execute("INSERT INTO meta VALUES ('event_format', ?)", (stored,))
        else:
            stored = row[0]
        if stored != wanted:
            self._db.close()
            raise ConfigError(
                "the durable bus file holds another event format",
                [
                    Problem(
                        "local.event_format",
                        wanted,
                        f"{self.path} stores {stored} events: set {stored!r} or use a new path",
                    )
                ],
            )
        return stored

    def _remember(self, spec: SubscriptionSpec) -> None:
        self._specs[spec.name] = spec
        self._matchers[spec.name] = compile_filter(spec.filter) if spec.filter else None

    # contract ---------------------------------------------------------------

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Store the events and a delivery row per matching subscription, in one transaction."""
        subs = [(n, s, self._matchers[n]) for n, s in self._specs.items() if s.topic == topic]
        now = time.time()
        with self._cond:
            db = self._db
            db.execute("BEGIN")
            try:
                self._flush_acks()
                cur = db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages")
                first = cur.fetchone()[0] + 1
                db.executemany(
                    "INSERT INTO messages (seq, topic, published_at, body) VALUES (?, ?, ?, ?)",
                    [(first + i, topic, now, self._encode(e)) for i, e in enumerate(events)],
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
                            event.get_attributes().get("partitionkey")
                            if spec.policy.ordered
                            else None
                        )
                        rows.append((name, first + i, 0.0, None if key is None else str(key)))
                if rows:
                    db.executemany(
                        "INSERT INTO deliveries (sub, seq, visible_at, pkey) VALUES (?, ?, ?, ?)",
                        rows,
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if subs:
                self._cond.notify_all()

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update the subscription row; every filter is evaluated locally."""
        with self._cond:
            self._db.execute(
                "INSERT INTO subscriptions (name, topic, filter, policy) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET topic = excluded.topic, "
                "filter = excluded.filter, policy = excluded.policy",
                (
                    spec.name,
                    spec.topic,
                    json.dumps(to_json(spec.filter)) if spec.filter else None,
                    _policy_to_json(spec.policy),
                ),
            )
            self._remember(spec)
        return None

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[DurableDelivery]:
        """Lease up to `max_events` visible rows, waiting up to `timeout` for the first."""
        spec = self._spec(subscription)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                taken = self._lease(spec, max_events)
                if taken or time.monotonic() >= deadline:
                    return taken
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _lease(self, spec: SubscriptionSpec, max_events: int) -> list[DurableDelivery]:
        db = self._db
        now = time.time()
        lease = now + spec.policy.ack_deadline
        db.execute("BEGIN IMMEDIATE")
        try:
            self._flush_acks()
            if spec.policy.ordered:
                seqs = [r[0] for r in self._ordered_candidates(spec.name, now, max_events)]
                marks = ",".join("?" * len(seqs))
                leased = (
                    db.execute(
                        f"UPDATE deliveries SET visible_at = ?, attempts = attempts + 1 "
                        f"WHERE sub = ? AND seq IN ({marks}) RETURNING seq, attempts",
                        (lease, spec.name, *seqs),
                    ).fetchall()
                    if seqs
                    else []
                )
            else:
                leased = db.execute(
                    "UPDATE deliveries SET visible_at = ?, attempts = attempts + 1 "
                    "WHERE sub = ? AND seq IN (SELECT seq FROM deliveries WHERE sub = ? "
                    "AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?) RETURNING seq, attempts",
                    (lease, spec.name, spec.name, now, max_events),
                ).fetchall()
            if not leased:
                db.execute("COMMIT")
                return []
            leased.sort()
            seqs = [seq for seq, _ in leased]
            marks = ",".join("?" * len(seqs))
            bodies = dict(
                db.execute(
                    f"SELECT seq, body FROM messages WHERE seq IN ({marks})", seqs
                ).fetchall()
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        attempts = dict(leased)
        return [
            DurableDelivery(self, spec.name, seq, attempts[seq], self._decode(bodies[seq]), False)
            for seq in seqs
        ]

    def _ordered_candidates(self, sub: str, now: float, limit: int) -> list[tuple[int]]:
        """Per partition key, the oldest row, only if nothing of that key is leased or delayed."""
        return self._db.execute(
            "SELECT seq FROM deliveries d WHERE sub = ? AND visible_at <= ? AND ("
            " pkey IS NULL OR seq = (SELECT MIN(seq) FROM deliveries e WHERE e.sub = d.sub"
            " AND e.pkey = d.pkey)) ORDER BY seq LIMIT ?",
            (sub, now, limit),
        ).fetchall()

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[DurableDelivery]:
        """Dead-lettered events; ack removes them."""
        with self._cond:
            self._flush_acks()
            rows = self._db.execute(
                "SELECT d.seq, d.attempts, m.body FROM dead_letters d JOIN messages m "
                "ON m.seq = d.seq WHERE d.sub = ? ORDER BY d.seq LIMIT ?",
                (subscription, max_events),
            ).fetchall()
        decode = self._decode
        return [DurableDelivery(self, subscription, s, a, decode(b), True) for s, a, b in rows]

    def dead_letter_reasons(self, subscription: str) -> list[str]:
        """Why each dead-lettered event of the subscription was dead-lettered."""
        with self._cond:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT reason FROM dead_letters WHERE sub = ? ORDER BY seq", (subscription,)
                )
            ]

    def delete_subscription(self, subscription: str) -> None:
        """Remove the subscription with its delivery and dead-letter rows."""
        with self._cond:
            for table, column in (
                ("subscriptions", "name"),
                ("deliveries", "sub"),
                ("dead_letters", "sub"),
            ):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (subscription,))
            self._specs.pop(subscription, None)
            self._matchers.pop(subscription, None)

    def replay(self, subscription: str, since: datetime) -> None:
        """Queue again every stored event of the topic published at or after `since`."""
        spec = self._spec(subscription)
        match = self._matchers[subscription]
        with self._cond:
            self._flush_acks()
            rows = self._db.execute(
                "SELECT seq, body FROM messages WHERE topic = ? AND published_at >= ?",
                (spec.topic, since.timestamp()),
            ).fetchall()
            keep = [
                (subscription, seq, 0.0)
                for seq, body in rows
                if match is None or match(AttributeView(self._decode(body)))
            ]
            self._db.executemany(
                "INSERT INTO deliveries (sub, seq, visible_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sub, seq) DO UPDATE SET visible_at = 0",
                keep,
            )
            self._cond.notify_all()

    def backlog(self, subscription: str) -> int:
        """Events waiting or in flight for the subscription."""
        with self._cond:
            self._flush_acks()
            row = self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE sub = ?", (subscription,)
            ).fetchone()
            return int(row[0])

    def close(self) -> None:
        """Write buffered acks and close the database."""
        with self._cond:
            self._flush_acks()
            self._db.close()

    # internals --------------------------------------------------------------

    def _spec(self, subscription: str) -> SubscriptionSpec:
        try:
            return self._specs[subscription]
        except KeyError:
            raise KeyError(f"no subscription named {subscription!r}") from None

    def _flush_acks(self) -> None:
        if self._pending_acks:
            acks, self._pending_acks = self._pending_acks, []
            self._db.executemany("DELETE FROM deliveries WHERE sub = ? AND seq = ?", acks)

    def _ack(self, sub: str, seq: int, dead: bool) -> None:
        with self._cond:
            if dead:
                self._db.execute("DELETE FROM dead_letters WHERE sub = ? AND seq = ?", (sub, seq))
            else:
                self._pending_acks.append((sub, seq))

    def _nack(self, sub: str, seq: int, attempt: int, delay: float) -> None:
        spec = self._spec(sub)
        if attempt >= spec.policy.max_delivery_attempts:
            self._dead_letter(sub, seq, attempt, f"max delivery attempts ({attempt}) reached")
            return
        with self._cond:
            self._db.execute(
                "UPDATE deliveries SET visible_at = ? WHERE sub = ? AND seq = ?",
                (time.time() + delay, sub, seq),
            )
            self._cond.notify_all()

    def _dead_letter(self, sub: str, seq: int, attempt: int, reason: str) -> None:
        with self._cond:
            db = self._db
            db.execute("BEGIN")
            db.execute("DELETE FROM deliveries WHERE sub = ? AND seq = ?", (sub, seq))
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (sub, seq, attempts, reason) VALUES (?, ?, ?, ?)",
                (sub, seq, attempt, reason),
            )
            db.execute("COMMIT")
