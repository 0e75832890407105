"""Sagas with compensation, orchestrated: plain Python steps, state in the app's database.

    saga = Saga("order", steps=[
        Step("reserve", action=reserve, compensation=release, timeout=5,
             on={"com.shop.inventory.reserved": NEXT, "com.shop.inventory.rejected": FAIL}),
        Step("charge", action=charge, compensation=refund, timeout=5,
             on={"com.shop.payment.charged": NEXT, "com.shop.payment.declined": FAIL}),
        Step("confirm", action=confirm),
    ], on_compensated=cancel)

A step's `action` returns the `Command` to publish (or None); the saga then
waits for one of the reply types in `on`: NEXT runs the next step, FAIL
compensates. A step without `on` completes as soon as its command is
published. A step whose reply does not come within `timeout` seconds
compensates too, and its own compensation runs as well (its action may have
taken effect). Compensations are the `compensation` commands of the steps
completed so far, published in reverse order; then `on_compensated` (or
`on_completed` after the last step) publishes the saga's outcome.

`SagaRunner` drives one saga: `start(saga_id, data)` stores it and runs the
first step, `handle_reply(event)` advances it in one transaction per reply,
and `expire()` (the App's timer loop) claims the sagas whose deadline passed.
Every transition is a compare-and-set on the stored version, and a reply is
applied only when it answers the command of the step the saga is waiting on
(its ``causationid``), so redelivered and late replies change nothing.
Commands are published before the transaction commits, with deterministic
ids (``<saga>:<saga id>:<step>:do`` / ``:undo``): a crash after publishing
repeats the publish with the same ids, which an idempotent receiver
(``idempotent=True``) takes once; with ``outbox=True`` they are written to
the transactional outbox in the transition's own transaction instead, and a
relay publishes them. Every command carries ``correlationid`` =
the saga id and ``causationid`` = the event that caused it (the start event,
the reply, or for a timeout the unanswered command).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Connection, Engine

from polybus.core.consistency.database import write_transaction
from polybus.core.consistency.saga_store import (
    COMPENSATED,
    COMPLETED,
    RUNNING,
    SagaState,
    SagaStore,
)
from polybus.core.consistency.tables import create_tables
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.correlation import CAUSATION_ID, CORRELATION_ID
from polybus.core.errors import Problem, ValidationError
from polybus.core.events import new_event
from polybus.core.runtime.current import current_event

if TYPE_CHECKING:
    from polybus.core.consistency.outbox import Outbox

log = logging.getLogger("polybus.saga")

NEXT = "next"
FAIL = "fail"
Publish = Callable[[Sequence[CloudEvent], str], None]

__all__ = [
    "COMPENSATED",
    "COMPLETED",
    "FAIL",
    "NEXT",
    "RUNNING",
    "Command",
    "Saga",
    "SagaRunner",
    "SagaState",
    "Step",
]


@dataclass(frozen=True)
class Command:
    """An event a saga publishes: its type, data, topic and optional subject."""

    type: str
    data: Any = None
    topic: str = DEFAULT_TOPIC
    subject: str | None = None


Act = Callable[[SagaState], Command | None]


@dataclass(frozen=True)
class Step:
    """One step: the command to send, how to undo it, and which replies move the saga."""

    name: str
    action: Act
    compensation: Act | None = None
    timeout: float | None = None
    on: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = [
            Problem(f"step {self.name!r}.on[{reply!r}]", outcome, f"must be {NEXT!r} or {FAIL!r}")
            for reply, outcome in self.on.items()
            if outcome not in (NEXT, FAIL)
        ]
        if self.timeout is not None and not self.timeout > 0:
            problems.append(Problem(f"step {self.name!r}.timeout", self.timeout, "must be > 0 seconds"))
        if self.timeout is not None and not self.on:
            problems.append(
                Problem(f"step {self.name!r}.timeout", self.timeout, "needs replies to wait for (on=...)")
            )
        if not self.name or ":" in self.name:
            problems.append(Problem("step.name", self.name, "must be non-empty, without ':'"))
        if problems:
            raise ValidationError(f"invalid saga step {self.name!r}", problems)


@dataclass(frozen=True)
class Saga:
    """A named sequence of steps, and what to publish when it completes or is compensated."""

    name: str
    steps: Sequence[Step]
    on_completed: Act | None = None
    on_compensated: Act | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.name or ":" in self.name:
            problems.append(Problem("name", self.name, "must be non-empty, without ':'"))
        if not self.steps:
            problems.append(Problem("steps", [], "a saga needs at least one step"))
        names = [step.name for step in self.steps]
        problems += [
            Problem("steps", name, "step name used twice")
            for name in sorted({n for n in names if names.count(n) > 1})
        ]
        if problems:
            raise ValidationError(f"invalid saga {self.name!r}", problems)

    @property
    def source(self) -> str:
        """The CloudEvents source of everything the saga publishes."""
        return f"/polybus/saga/{self.name}"

    def reply_types(self) -> list[str]:
        """Every reply type some step waits for (the reply subscription's filter)."""
        return sorted({reply for step in self.steps for reply in step.on})

    def command_id(self, saga_id: str, step: str, kind: str) -> str:
        """The deterministic id of a step's command (`kind` "do" or "undo") or outcome."""
        return f"{self.name}:{saga_id}:{step}:{kind}"


def _json_or_none(value: Any) -> Any:
    """A reply's data as stored: itself when JSON can hold it, else None (e.g. binary data)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


@dataclass(frozen=True)
class _Outgoing:
    event: CloudEvent
    topic: str


class SagaRunner:
    """Runs one `Saga` on a database, publishing through `publish` (bound by the App at start)."""

    def __init__(
        self,
        saga: Saga,
        engine: Engine | None = None,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
        *,
        outbox: bool = False,
    ) -> None:
        self.saga = saga
        self.engine = engine
        self.publish = publish
        self.clock = clock
        self.store = SagaStore()
        self.use_outbox = outbox
        self.outbox: Outbox | None = None

    def bind(self, engine: Engine, publish: Publish) -> None:
        """Attach the database and the publisher (the App does this at start) and create tables.

        With ``outbox=True`` commands go into the transactional outbox of
        `engine` instead (written in the transition's transaction; a relay
        on that database publishes them), and `publish` is not used.
        """
        self.engine, self.publish = engine, publish
        create_tables(engine)
        if self.use_outbox:
            from polybus.core.consistency.outbox import Outbox

            self.outbox = Outbox(engine)

    # the API ----------------------------------------------------------------------

    def start(self, saga_id: str, data: Mapping[str, Any], cause: CloudEvent | None = None) -> bool:
        """Store a new saga and run its first step; False when `saga_id` was started already.

        Two transactions: the saga is committed before its first command is
        published, so no reply can arrive for a saga other transactions
        cannot see yet; a call finding the saga stored but its first step not
        run (a crash between the two) runs it. `cause` (default: the event
        being handled, inside a handler) becomes the first command's
        ``causationid``.
        """
        engine, publish = self._bound()
        if not saga_id or not isinstance(saga_id, str):
            raise ValidationError(
                f"saga {self.saga.name!r}", [Problem("saga_id", saga_id, "must be a non-empty string")]
            )
        try:
            json.dumps(dict(data))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"saga {self.saga.name!r}", [Problem("data", data, f"must be JSON: {exc}")]
            ) from exc
        cause = cause if cause is not None else current_event.get()
        now = self.clock()
        first = self.saga.steps[0]
        deadline = None if first.timeout is None else now + first.timeout  # also if we crash next
        state = SagaState(
            self.saga.name, saga_id, RUNNING, 0, dict(data), deadline=deadline,
            created_at=now, updated_at=now,
        )  # fmt: skip
        with write_transaction(engine) as conn:
            self.store.insert(conn, state)
        with write_transaction(engine) as conn:
            stored = self.store.load(conn, self.saga.name, saga_id)
            if stored is None or stored.version != 0:
                return False  # started (and its first step run) already
            new, outgoing = self._run_from(stored, 0, None if cause is None else cause.get_id(), now)
            if not self.store.save(conn, new, stored.version):
                return False
            self._send(conn, publish, outgoing)
        self._log(new)
        return True

    async def start_async(
        self, saga_id: str, data: Mapping[str, Any], cause: CloudEvent | None = None
    ) -> bool:
        """`start` from async code: the database work runs in a thread, not on the loop."""
        return await asyncio.to_thread(self.start, saga_id, data, cause or current_event.get())

    def handle_reply(self, event: CloudEvent) -> bool:
        """Advance the saga `event` answers (its ``correlationid``); False when it changed nothing."""
        engine, publish = self._bound()
        saga_id = event.get_extension(CORRELATION_ID)
        if not isinstance(saga_id, str):
            log.warning("%s: reply %s has no correlationid; ignored", self.saga.name, event.get_id())
            return False
        now = self.clock()
        with write_transaction(engine) as conn:
            state = self.store.load(conn, self.saga.name, saga_id)
            if state is None or state.done:
                return False
            step = self.saga.steps[state.step]
            outcome = step.on.get(event.get_type())
            waited_for = self.saga.command_id(saga_id, step.name, "do")
            causation = event.get_extension(CAUSATION_ID)
            if outcome is None or (causation is not None and causation != waited_for):
                return False  # a late, redelivered or unrelated reply
            replies = {**state.replies, step.name: _json_or_none(event.get_data())}
            moved = replace(state, replies=replies)
            if outcome == NEXT:
                new, outgoing = self._run_from(moved, state.step + 1, event.get_id(), now)
            else:
                reason = f"{step.name}: {event.get_type()}"
                new, outgoing = self._compensate(moved, state.step, event.get_id(), reason, now)
            if not self.store.save(conn, new, state.version):
                raise RuntimeError(f"saga {saga_id} changed concurrently; the reply is retried")
            self._send(conn, publish, outgoing)
        self._log(new)
        return True

    def expire(self, now: float | None = None, limit: int = 100) -> int:
        """Compensate every running saga whose step deadline passed; returns how many."""
        engine, publish = self._bound()
        now = self.clock() if now is None else now
        with engine.connect() as conn:
            due = self.store.due(conn, self.saga.name, now, limit)
        expired = 0
        for saga_id in due:
            with write_transaction(engine) as conn:
                state = self.store.load(conn, self.saga.name, saga_id)
                if state is None or state.done or state.deadline is None or state.deadline > now:
                    continue  # another runner or a reply got there first
                step = self.saga.steps[state.step]
                unanswered = self.saga.command_id(saga_id, step.name, "do")
                reason = f"{step.name}: no reply within {step.timeout:g}s"
                new, outgoing = self._compensate(state, state.step + 1, unanswered, reason, now)
                if not self.store.save(conn, new, state.version):
                    continue  # claimed by another runner
                self._send(conn, publish, outgoing)
            expired += 1
            self._log(new)
        return expired

    def state(self, saga_id: str) -> SagaState | None:
        """The stored state of one saga, or None."""
        engine, _ = self._bound()
        with engine.connect() as conn:
            return self.store.load(conn, self.saga.name, saga_id)

    def counts(self) -> dict[str, int]:
        """How many sagas are running, completed and compensated."""
        engine, _ = self._bound()
        with engine.connect() as conn:
            return self.store.counts(conn, self.saga.name)

    # transitions (pure: a new state and the events to publish) ----------------------

    def _run_from(
        self, state: SagaState, index: int, cause: str | None, now: float
    ) -> tuple[SagaState, list[_Outgoing]]:
        outgoing: list[_Outgoing] = []
        steps = self.saga.steps
        while index < len(steps):
            step = steps[index]
            current = replace(state, step=index)
            self._emit(outgoing, step.action(current), current, step.name, "do", cause)
            if step.on:
                deadline = None if step.timeout is None else now + step.timeout
                return self._moved(current, RUNNING, deadline, now), outgoing
            index += 1
        done = replace(state, step=len(steps) - 1)
        if self.saga.on_completed is not None:
            self._emit(outgoing, self.saga.on_completed(done), done, "saga", "completed", cause)
        return self._moved(done, COMPLETED, None, now), outgoing

    def _compensate(
        self, state: SagaState, through: int, cause: str | None, reason: str, now: float
    ) -> tuple[SagaState, list[_Outgoing]]:
        """Undo steps ``0..through-1`` in reverse order, then publish `on_compensated`."""
        outgoing: list[_Outgoing] = []
        failed = replace(state, reason=reason)
        for step in reversed(self.saga.steps[:through]):
            if step.compensation is not None:
                self._emit(outgoing, step.compensation(failed), failed, step.name, "undo", cause)
        if self.saga.on_compensated is not None:
            self._emit(
                outgoing, self.saga.on_compensated(failed), failed, "saga", "compensated", cause
            )
        return self._moved(failed, COMPENSATED, None, now), outgoing

    def _emit(
        self,
        outgoing: list[_Outgoing],
        command: Command | None,
        state: SagaState,
        step: str,
        kind: str,
        cause: str | None,
    ) -> None:
        if command is None:
            return
        extensions = {CORRELATION_ID: state.saga_id}
        if cause is not None:
            extensions[CAUSATION_ID] = cause
        event = new_event(
            command.type,
            self.saga.source,
            command.data,
            id=self.saga.command_id(state.saga_id, step, kind),
            subject=command.subject or state.saga_id,
            extensions=extensions,
        )
        outgoing.append(_Outgoing(event, command.topic))

    @staticmethod
    def _moved(state: SagaState, status: str, deadline: float | None, now: float) -> SagaState:
        return replace(
            state, status=status, deadline=deadline, version=state.version + 1, updated_at=now
        )

    # plumbing ------------------------------------------------------------------------

    def _bound(self) -> tuple[Engine, Publish]:
        if self.engine is None or self.publish is None:
            raise ValidationError(
                f"saga {self.saga.name!r}",
                [Problem("runner", None, "not bound: start the App (or call bind()) first")],
            )
        return self.engine, self.publish

    def _send(self, conn: Connection, publish: Publish, outgoing: list[_Outgoing]) -> None:
        """Publish in order (one batch per run of one topic), or write them to the outbox."""
        batches: list[tuple[str, list[CloudEvent]]] = []
        for item in outgoing:
            if batches and batches[-1][0] == item.topic:
                batches[-1][1].append(item.event)
            else:
                batches.append((item.topic, [item.event]))
        if self.outbox is None:
            for topic, events in batches:
                publish(events, topic)
            return
        with self.outbox.transaction(conn) as tx:
            for topic, events in batches:
                tx.publish(events, topic)

    def _log(self, state: SagaState) -> None:
        step = self.saga.steps[state.step].name
        log.info(
            "saga %s %s: %s at step %s%s",
            self.saga.name,
            state.saga_id,
            state.status,
            step,
            f" ({state.reason})" if state.reason else "",
        )
