"""The outbox relay: publishes committed outbox rows through a Bus, at least once, in order per key.

    relay = Relay("postgresql+psycopg://.../shop", bus)
    relay.start()          # a thread; or relay.run_once() / `polybus outbox relay --db URL`

- **Claims with leases.** A relay claims a batch by writing its owner id and a
  lease expiry on the rows, in one short transaction: on PostgreSQL with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` under a transaction-scoped advisory
  lock (claims are serialised: SKIP LOCKED alone could skip a key's first row,
  locked by a concurrent claim, and hand out the second); on SQLite in a
  ``BEGIN IMMEDIATE`` transaction. A row leased by a live relay is never
  claimed by another; a dead relay's lease expires and its rows are claimed
  again (at least once: they may be published twice). A relay starting
  releases at once the leases of relays of the same host whose process is
  gone (the owner id is ``host/pid/random``), so a restarted relay does not
  wait for the lease of the one it replaces.
- **Order per partition key.** A row is claimable only when no earlier
  unpublished row of the same ``partitionkey`` is leased by another relay or
  waiting in backoff, and a batch is published in id order; the first failure
  stops the batch, so a key's next row waits until the previous is published.
  Rows without a key are independent.
- **Backoff.** A failed publish puts the row back with ``next_attempt_at``
  growing exponentially (`RelaySettings.backoff`, capped at `backoff_max`).
- **Wake-up.** On PostgreSQL the relay LISTENs on ``polybus_outbox`` (the
  writer NOTIFYs in its transaction); on SQLite it polls every
  `poll_interval` and is woken at once by a writer in the same process.
- **Journal.** Published rows are kept; `prune()` (every `prune_interval`
  while running) deletes those published more than `retention` seconds ago.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, or_, select, text, update
from sqlalchemy.engine import URL, Row

from polybus.core.bus import Bus
from polybus.core.consistency.database import (
    WAKEUPS,
    PgListener,
    check_table,
    database_key,
    is_postgres,
    make_engine,
    parse_duration,
)
from polybus.core.consistency.outbox import CHANNEL, decode, outbox_table
from polybus.core.consistency.tables import create_tables
from polybus.core.errors import ConfigError, Problem, ValidationError

log = logging.getLogger("polybus.outbox")
_ADVISORY_KEY = 0x706F6C79  # "poly": serialises claims across relays on PostgreSQL
DEFAULT_RETENTION = 7 * 86400.0
_HOST = socket.gethostname()


def _is_dead(owner: str) -> bool:
    """True when `owner` names a relay process of this host that no longer exists."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class RelaySettings:
    """How a relay claims, publishes, backs off and prunes.

    `poll_interval` None: 0.05 s on SQLite, 1 s on PostgreSQL (where NOTIFY wakes it).
    `retention` None: published rows are kept for ever.
    """

    batch_size: int = 500
    publish_batch: int = 100
    lease: float = 30.0
    poll_interval: float | None = None
    backoff: float = 0.5
    backoff_max: float = 60.0
    retention: float | None = DEFAULT_RETENTION
    prune_interval: float = 60.0

    def __post_init__(self) -> None:
        problems = [
            Problem(name, getattr(self, name), "must be > 0")
            for name in ("batch_size", "publish_batch", "lease", "backoff", "backoff_max", "prune_interval")
            if not getattr(self, name) > 0
        ]
        for name in ("poll_interval", "retention"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(Problem(name, value, "must be > 0 (or None)"))
        if problems:
            raise ValidationError("invalid relay settings", problems)

    def delay(self, attempts: int) -> float:
        """Seconds before retrying a row that failed `attempts` times."""
        return float(min(self.backoff_max, self.backoff * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class RelayStats:
    """What a relay did so far."""

    published: int
    failed: int
    pruned: int


class Relay:
    """Publishes outbox rows through `bus` (see the module docstring)."""

    def __init__(
        self,
        db: str | URL | Engine,
        bus: Bus,
        settings: RelaySettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        url = db.url if isinstance(db, Engine) else db
        self.engine = make_engine(url, immediate=True)
        self.bus = bus
        self.settings = settings or RelaySettings()
        self.clock = clock
        self.owner = owner or f"{_HOST}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self.postgres = is_postgres(self.engine)
        self.key = database_key(self.engine)
        create_tables(self.engine)
        self.recover()
        self._published = self._failed = self._pruned = 0
        self._next_prune = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # one round ----------------------------------------------------------------

    def stats(self) -> RelayStats:
        """Rows published, publish failures and rows pruned so far."""
        return RelayStats(self._published, self._failed, self._pruned)

    def recover(self) -> int:
        """Release the leases of relays of this host whose process is gone; returns rows released."""
        o = outbox_table
        with self.engine.connect() as conn:
            owners = conn.execute(
                select(o.c.lease_owner).where(o.c.lease_owner.is_not(None)).distinct()
            ).scalars().all()
        dead = [owner for owner in owners if _is_dead(owner)]
        if not dead:
            return 0
        with self.engine.begin() as conn:
            released = conn.execute(
                update(o).where(o.c.lease_owner.in_(dead)).values(lease_owner=None, lease_until=None)
            ).rowcount
        log.info("outbox relay: released %d row(s) leased by dead relays %s", released, dead)
        return int(released)

    def claim(self) -> list[Row[Any, Any, Any, Any]]:
        """Lease the next batch of publishable rows to this relay (id order)."""
        o = outbox_table
        p = outbox_table.alias("earlier")
        now = self.clock()
        # Only a leased or previously failed row can hold its key back (the partial
        # index ix_polybus_outbox_blocking holds exactly those).
        # Leases this relay still holds outside `step` are stale (a settle that
        # failed): they neither block nor stop a claim.
        blocked = exists().where(
            p.c.partition_key == o.c.partition_key,
            p.c.published_at.is_(None),
            or_(p.c.lease_owner.is_not(None), p.c.attempts > 0),
            p.c.id < o.c.id,
            or_(and_(p.c.lease_until > now, p.c.lease_owner != self.owner), p.c.next_attempt_at > now),
        )
        query = (
            select(o.c.id, o.c.topic, o.c.event, o.c.attempts)
            .where(
                o.c.published_at.is_(None),
                or_(o.c.lease_until.is_(None), o.c.lease_until <= now, o.c.lease_owner == self.owner),
                o.c.next_attempt_at <= now,
                or_(o.c.partition_key.is_(None), ~blocked),
            )
            .order_by(o.c.id)
            .limit(self.settings.batch_size)
        )
        with self.engine.begin() as conn:
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
                query = query.with_for_update(skip_locked=True, of=o)
            rows = list(conn.execute(query).all())
            if rows:
                conn.execute(
                    update(o)
                    .where(o.c.id.in_([r.id for r in rows]))
                    .values(lease_owner=self.owner, lease_until=now + self.settings.lease)
                )
        return rows

    def step(self) -> int:
        """Claim one batch and publish it in order; returns rows published."""
        rows = self.claim()
        if not rows:
            return 0
        done: list[int] = []
        failed: tuple[Row[Any, Any, Any, Any], BaseException] | None = None
        i = 0
        while i < len(rows):
            j = i
            while (
                j < len(rows)
                and rows[j].topic == rows[i].topic
                and j - i < self.settings.publish_batch
            ):
                j += 1
            chunk = rows[i:j]
            try:
                self.bus.publish([decode(r.event) for r in chunk], chunk[0].topic)
            except Exception as exc:  # any publish failure: back off, keep the rest for later
                failed = (chunk[0], exc)
                break
            done.extend(r.id for r in chunk)
            i = j
        self._settle(done, [r.id for r in rows[len(done):]], failed)
        return len(done)

    def _settle(
        self, done: list[int], rest: list[int], failed: tuple[Row[Any, Any, Any, Any], BaseException] | None
    ) -> None:
        o = outbox_table
        now = self.clock()
        mine = o.c.lease_owner == self.owner
        with self.engine.begin() as conn:
            if done:
                conn.execute(
                    update(o)
                    .where(o.c.id.in_(done), mine)
                    .values(
                        published_at=now, lease_owner=None, lease_until=None, attempts=o.c.attempts + 1
                    )
                )
            if failed is not None:
                row, exc = failed
                attempts = row.attempts + 1
                conn.execute(
                    update(o)
                    .where(o.c.id == row.id, mine)
                    .values(
                        attempts=attempts,
                        next_attempt_at=now + self.settings.delay(attempts),
                        last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    )
                )
            if rest:
                conn.execute(update(o).where(o.c.id.in_(rest), mine).values(lease_owner=None, lease_until=None))
        self._published += len(done)
        if failed is not None:
            self._failed += 1
            log.warning("outbox relay: publish failed for row %s: %s", failed[0].id, failed[1])

    def run_once(self) -> int:
        """Publish until no row is publishable now (rows in backoff wait); returns rows published."""
        total = 0
        while True:
            count = self.step()
            total += count
            if count == 0:
                return total

    def prune(self) -> int:
        """Delete published rows older than the retention; returns rows deleted."""
        if self.settings.retention is None:
            return 0
        horizon = self.clock() - self.settings.retention
        o = outbox_table
        with self.engine.begin() as conn:
            deleted = conn.execute(
                delete(o).where(and_(o.c.published_at.is_not(None), o.c.published_at < horizon))
            ).rowcount
        self._pruned += deleted
        return int(deleted)

    # running --------------------------------------------------------------------

    def _interval(self) -> float:
        if self.settings.poll_interval is not None:
            return self.settings.poll_interval
        return 1.0 if self.postgres else 0.05

    def run(self, stop: threading.Event | None = None) -> None:
        """Publish, wait for a wake-up or the poll interval, repeat until `stop` is set.

        A database that goes away is retried (logged), never fatal; on
        PostgreSQL the LISTEN connection is re-opened when it breaks, and the
        relay polls meanwhile.
        """
        stop = stop or self._stop
        listener: PgListener | None = None
        flag = WAKEUPS.subscribe(self.key)
        interval = self._interval()
        try:
            while not stop.is_set():
                if self.postgres and listener is None:
                    listener = self._listen()
                try:
                    published = self.run_once()
                    if self.clock() >= self._next_prune:
                        self._next_prune = self.clock() + self.settings.prune_interval
                        self.prune()
                except Exception:  # the database may be away for a moment: keep going
                    log.exception("outbox relay: round failed; retrying")
                    stop.wait(min(1.0, interval * 10))
                    continue
                if published:
                    continue
                if listener is not None:
                    try:
                        listener.wait(interval)
                    except Exception as exc:  # the LISTEN connection broke: re-open it next round
                        log.warning("outbox relay: LISTEN connection lost (%s); re-opening", exc)
                        listener.close()
                        listener = None
                else:
                    flag.wait(interval)
                    flag.clear()
        finally:
            WAKEUPS.unsubscribe(self.key, flag)
            if listener is not None:
                listener.close()

    def _listen(self) -> PgListener | None:
        try:
            return PgListener(self.engine.url, CHANNEL)
        except Exception as exc:  # polled meanwhile; tried again next round
            log.warning("outbox relay: cannot LISTEN (%s); polling", exc)
            return None

    def start(self) -> threading.Thread:
        """Run the relay in a daemon thread until `stop()`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="polybus-outbox-relay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread started by `start()` and release the engine."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.engine.dispose()


OUTBOX_TABLE = "outbox"
OUTBOX_KEYS: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "retention": (int, float, str),
    "batch_size": int,
    "lease": (int, float),
    "poll_interval": (int, float),
    "backoff": (int, float),
    "backoff_max": (int, float),
}


@dataclass(frozen=True)
class OutboxConfig:
    """The [outbox] table: the database the relay reads and its settings."""

    url: str
    settings: RelaySettings


def parse_outbox(table: Mapping[str, Any], url: str | None = None) -> OutboxConfig:
    """Validate an [outbox] table (unknown keys with a did-you-mean); `url` overrides its url."""
    merged = dict(table)
    if url:
        merged["url"] = url
    check_table(OUTBOX_TABLE, merged, OUTBOX_KEYS)
    values: dict[str, Any] = {
        key: merged[key]
        for key in ("batch_size", "lease", "poll_interval", "backoff", "backoff_max")
        if key in merged
    }
    if "retention" in merged:
        values["retention"] = parse_duration("outbox.retention", merged["retention"])
    try:
        settings = RelaySettings(**values)
    except ValidationError as exc:
        raise ConfigError(
            "invalid [outbox] settings",
            [Problem(f"outbox.{p.field}", p.value, p.rule) for p in exc.problems],
        ) from None
    return OutboxConfig(str(merged["url"]), settings)


def outbox_counts(db: str | URL | Engine) -> dict[str, int]:
    """Rows pending, pending after a failed publish, and published (kept as the journal)."""
    engine = db if isinstance(db, Engine) else make_engine(db)
    o = outbox_table
    try:
        create_tables(engine)
        pending = o.c.published_at.is_(None)
        query = select(
            func.count().filter(pending),
            func.count().filter(and_(pending, o.c.attempts > 0)),
            func.count().filter(o.c.published_at.is_not(None)),
        )
        with engine.connect() as conn:
            waiting, failing, published = conn.execute(query).one()
    finally:
        if not isinstance(db, Engine):
            engine.dispose()
    return {"pending": int(waiting), "failing": int(failing), "published": int(published)}
