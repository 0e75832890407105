"""The business service of the outbox chaos test, run as a process that is killed with SIGKILL.

    python -m tests.consistency.chaos_outbox_writer URL TOTAL

Writes orders (business rows) and their events in one transaction each, 1-9
orders at a time, continuing after the highest committed order; about one
transaction in ten writes rows and events under ``rb-`` ids and rolls back.
Keys: order n has partition key ``k{n % 16}``.
"""

from __future__ import annotations

import os
import random
import sys
import uuid

from sqlalchemy import func, insert, select

from polybus.core.consistency.database import make_engine
from polybus.core.consistency.outbox import Outbox
from polybus.core.events import new_event
from tests.consistency.outbox_helpers import business, orders

KEYS = 16


def main(url: str, total: int) -> None:
    """Write orders until `total` are committed."""
    engine = make_engine(url)
    business.create_all(engine)
    outbox = Outbox(engine)
    rng = random.Random(os.getpid())
    with engine.connect() as conn:
        done = conn.execute(select(func.max(orders.c.id))).scalar()
    next_id = 0 if done is None else done + 1
    rolled_back = 0
    while next_id < total:
        count = min(rng.randint(1, 9), total - next_id)
        rollback = rng.random() < 0.1
        with engine.connect() as conn:
            trans = conn.begin()
            if rollback:
                rolled_back += 1
                ids = [-(rolled_back * 10 + i) for i in range(count)]
                names = [f"rb-{uuid.uuid4().hex}" for _ in ids]
            else:
                ids = list(range(next_id, next_id + count))
                names = [f"order-{n}" for n in ids]
            conn.execute(insert(orders), [{"id": n, "key": f"k{abs(n) % KEYS}"} for n in ids])
            with outbox.transaction(conn) as tx:
                tx.publish(
                    [
                        new_event("order.placed", "/chaos", {"n": n}, id=name, extensions={"partitionkey": f"k{abs(n) % KEYS}"})
                        for n, name in zip(ids, names, strict=True)
                    ],
                    topic="orders",
                )
            if rollback:
                trans.rollback()
            else:
                trans.commit()
                next_id += count
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
