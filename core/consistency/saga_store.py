"""Saga state in the application's database: one row per saga instance, versioned.

Every change is a compare-and-set on ``version`` inside the caller's
transaction (`SagaStore.save` returns False when another transaction moved
the saga first), and PostgreSQL also locks the row it reads (``FOR UPDATE``),
so two replies for one saga, or a reply racing the timeout loop, never both
advance it. SQLite engines from `open_database` serialise writers already.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    RowMapping,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from polybus.core.consistency.tables import metadata

RUNNING = "running"
COMPLETED = "completed"
COMPENSATED = "compensated"
STATUSES = (RUNNING, COMPLETED, COMPENSATED)

saga_table = Table(
    "polybus_sagas",
    metadata,
    Column("saga", String(200), primary_key=True),
    Column("saga_id", String(500), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("step", Integer, nullable=False),
    Column("deadline", Float, nullable=True),
    Column("data", Text, nullable=False),
    Column("replies", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("polybus_sagas_due", "saga", "status", "deadline"),
)


@dataclass(frozen=True)
class SagaState:
    """One saga instance as stored: where it is, what it carries, why it ended."""

    saga: str
    saga_id: str
    status: str
    step: int
    data: Mapping[str, Any]
    replies: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    reason: str = ""
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def done(self) -> bool:
        """True once the saga is completed or compensated."""
        return self.status != RUNNING


class SagaStore:
    """Reads and compare-and-set writes of `saga_table`, on the caller's connection."""

    def insert(self, conn: Connection, state: SagaState) -> bool:
        """Store a new saga; False when one with that id exists already (started twice)."""
        try:
            with conn.begin_nested():
                conn.execute(insert(saga_table).values(_row(state)))
        except IntegrityError:
            return False
        return True

    def load(self, conn: Connection, saga: str, saga_id: str) -> SagaState | None:
        """The saga's current state (row-locked on PostgreSQL), or None when unknown."""
        query = select(saga_table).where(saga_table.c.saga == saga, saga_table.c.saga_id == saga_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        return None if row is None else _state(row)

    def save(self, conn: Connection, state: SagaState, expected_version: int) -> bool:
        """Write `state` if the stored version is still `expected_version` (compare and set)."""
        values = _row(state)
        del values["saga"], values["saga_id"], values["created_at"]
        done = conn.execute(
            update(saga_table)
            .where(
                saga_table.c.saga == state.saga,
                saga_table.c.saga_id == state.saga_id,
                saga_table.c.version == expected_version,
            )
            .values(values)
        )
        return bool(done.rowcount == 1)

    def due(self, conn: Connection, saga: str, now: float, limit: int = 100) -> list[str]:
        """Ids of running sagas whose step deadline has passed, oldest deadline first."""
        query = (
            select(saga_table.c.saga_id)
            .where(
                saga_table.c.saga == saga,
                saga_table.c.status == RUNNING,
                saga_table.c.deadline.is_not(None),
                saga_table.c.deadline <= now,
            )
            .order_by(saga_table.c.deadline)
            .limit(limit)
        )
        return [str(row[0]) for row in conn.execute(query)]

    def counts(self, conn: Connection, saga: str) -> dict[str, int]:
        """How many sagas of `saga` are in each status (every status present, 0 when none)."""
        query = (
            select(saga_table.c.status, func.count())
            .where(saga_table.c.saga == saga)
            .group_by(saga_table.c.status)
        )
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({str(status): int(n) for status, n in conn.execute(query)})
        return counts


def _row(state: SagaState) -> dict[str, Any]:
    return {
        "saga": state.saga,
        "saga_id": state.saga_id,
        "status": state.status,
        "step": state.step,
        "deadline": state.deadline,
        "data": json.dumps(state.data),
        "replies": json.dumps(state.replies),
        "reason": state.reason,
        "version": state.version,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }


def _state(row: RowMapping) -> SagaState:
    return SagaState(
        saga=row["saga"],
        saga_id=row["saga_id"],
        status=row["status"],
        step=int(row["step"]),
        data=json.loads(row["data"]),
        replies=json.loads(row["replies"]),
        deadline=row["deadline"],
        reason=row["reason"] or "",
        version=int(row["version"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
