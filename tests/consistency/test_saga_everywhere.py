"""The order saga example on every provider: one order confirmed, one declined and compensated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from examples import order_saga as shop
from polybus import connect
from polybus.core.consistency.inbox import open_database
from polybus.core.consistency.saga import COMPENSATED, COMPLETED
from tests.consistency.helpers import running, wait_until


@pytest.mark.parametrize("provider", ["local", "aws", "azure", "gcp"])
def test_the_order_saga_runs_on_every_provider(
    provider: str, polybus_config: Callable[[str], Path], tmp_path: Path
) -> None:
    """The three example services on one provider: a good order completes, a declined one compensates."""
    engine = open_database(f"sqlite:///{tmp_path / 'shop.db'}")
    bus = connect(polybus_config(provider))
    orders = shop.build_orders(engine, timeout=60, tick=0.2)
    runner = orders.sagas["order"]
    good, declined = f"{provider}-good", f"{provider}-declined"
    try:
        with running(bus, orders, shop.build_inventory(engine), shop.build_payments(engine)):
            bus.publish(shop.place_order(good, "sku-1", 2, 100), shop.ORDERS)
            bus.publish(shop.place_order(declined, "sku-1", 1, shop.CARD_LIMIT + 1), shop.ORDERS)

            def ended() -> bool:
                states = [runner.state(good), runner.state(declined)]
                return all(s is not None and s.done for s in states)

            wait_until(ended, what="both sagas to end")

            def released() -> bool:
                with engine.connect() as conn:
                    query = select(shop.reservations.c.status).where(
                        shop.reservations.c.order_id == declined
                    )
                    return conn.execute(query).scalar() == "released"

            wait_until(released, what="the release")
        done, failed = runner.state(good), runner.state(declined)
        assert done is not None and done.status == COMPLETED
        assert failed is not None and failed.status == COMPENSATED
    finally:
        bus.close()
        engine.dispose()
