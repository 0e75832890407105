"""The transactional outbox: events written in the caller's transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from polybus.core.consistency.outbox import Outbox, decode, outbox_table
from polybus.core.errors import EventValidationError, ValidationError
from polybus.core.events import new_event
from tests.consistency.outbox_helpers import create_business, order_event, orders


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox_table)).scalar_one())


def test_committed_connection_transaction_keeps_row_and_event(pg_engine: Engine) -> None:
    """A committed Connection transaction stores the business row and the outbox row together."""
    create_business(pg_engine)
    outbox = Outbox(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(insert(orders).values(id=1, key="a"))
        with outbox.transaction(conn) as tx:
            tx.publish(order_event(1, "a"), topic="orders")
    with pg_engine.connect() as conn:
        row = conn.execute(select(outbox_table)).one()
    assert (row.topic, row.partition_key, row.event_id, row.published_at) == ("orders", "a", "order-1", None)
    assert decode(row.event).get_data() == {"n": 1}


def test_rolled_back_transaction_leaves_no_row(pg_engine: Engine) -> None:
    """A rolled-back transaction leaves neither the business row nor the outbox row."""
    create_business(pg_engine)
    outbox = Outbox(pg_engine)

    def place_order() -> None:
        with pg_engine.begin() as conn:
            conn.execute(insert(orders).values(id=1, key="a"))
            with outbox.transaction(conn) as tx:
                tx.publish(order_event(1, "a"), topic="orders")
            raise RuntimeError("business rule failed")

    with pytest.raises(RuntimeError):
        place_order()
    with pg_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 0
    assert _count(pg_engine) == 0


def test_orm_session_commit_and_rollback(pg_engine: Engine) -> None:
    """With an ORM Session the outbox row follows the session's commit or rollback."""
    create_business(pg_engine)
    outbox = Outbox(pg_engine)
    with Session(pg_engine) as session:
        session.execute(insert(orders).values(id=1, key="a"))
        with outbox.transaction(session) as tx:
            tx.publish(order_event(1), topic="orders")
        session.rollback()
        session.execute(insert(orders).values(id=2, key="b"))
        with outbox.transaction(session) as tx:
            tx.publish([order_event(2), order_event(3)], topic="orders")
        session.commit()
    with pg_engine.connect() as conn:
        ids = conn.execute(select(outbox_table.c.event_id).order_by(outbox_table.c.id)).scalars().all()
    assert ids == ["order-2", "order-3"]


def test_ids_increase_and_any_data_round_trips(pg_engine: Engine) -> None:
    """Rows get increasing ids; JSON, text and bytes data come back unchanged."""
    outbox = Outbox(pg_engine)
    events = [
        new_event("t.json", "/s", {"a": [1, 2.5, None, "é"]}),
        new_event("t.text", "/s", "plain text", datacontenttype="text/plain"),
        new_event("t.bytes", "/s", b"\x00\xff\x10", datacontenttype="application/octet-stream"),
    ]
    for item in events:
        with pg_engine.begin() as conn, outbox.transaction(conn) as tx:
            tx.publish(item, topic="mixed")
    with pg_engine.connect() as conn:
        rows = conn.execute(select(outbox_table.c.id, outbox_table.c.event).order_by(outbox_table.c.id)).all()
    assert [r.id for r in rows] == sorted(r.id for r in rows) and len({r.id for r in rows}) == 3
    assert [decode(r.event).get_data() for r in rows] == [e.get_data() for e in events]


def test_bad_input_is_refused_before_the_database(pg_engine: Engine) -> None:
    """An empty topic or a non-CloudEvent is refused naming the problem, and nothing is written."""
    outbox = Outbox(pg_engine)
    with pg_engine.begin() as conn, outbox.transaction(conn) as tx:
        with pytest.raises(ValidationError, match="topic"):
            tx.publish(order_event(1), topic=" ")
        with pytest.raises(TypeError, match="CloudEvent"):
            tx.publish({"id": "x"}, topic="orders")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Connection or Session"), outbox.transaction("db"):  # type: ignore[arg-type]
        pass
    assert _count(pg_engine) == 0


def test_invalid_event_is_an_event_validation_error(pg_engine: Engine) -> None:
    """An event breaking the CloudEvents rules is refused with EventValidationError."""
    from cloudevents.core.v1.event import CloudEvent

    outbox = Outbox(pg_engine)
    broken = CloudEvent.__new__(CloudEvent)
    broken._attributes = {"id": "", "source": "/s", "type": "t", "specversion": "1.0"}  # type: ignore[attr-defined]
    broken._data = None  # type: ignore[attr-defined]
    with pytest.raises(EventValidationError), pg_engine.begin() as conn, outbox.transaction(conn) as tx:
        tx.publish(broken, topic="orders")
