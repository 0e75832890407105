"""Sagas: the order saga completes or compensates, replies advance it once, timeouts compensate."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import Engine, select

from examples import order_saga as shop
from polybus import App, new_event
from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.consistency.inbox import open_database
from polybus.core.consistency.relay import Relay, RelaySettings
from polybus.core.consistency.saga import (
    COMPENSATED,
    COMPLETED,
    FAIL,
    NEXT,
    RUNNING,
    Command,
    Saga,
    SagaRunner,
    SagaState,
    Step,
)
from polybus.core.correlation import CAUSATION_ID, CORRELATION_ID
from polybus.core.errors import ValidationError
from polybus.core.hookspecs import hookimpl
from tests.consistency.helpers import running, wait_until


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test database, opened as the apps open it."""
    made = open_database(database_url)
    yield made
    made.dispose()


class Published:
    """Middleware recording every published event, in publish order."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.lock = threading.Lock()

    @hookimpl
    def polybus_after_publish(self, events: Sequence[CloudEvent], topic: str) -> None:
        """Record the batch."""
        with self.lock:
            self.events.extend(events)


class Shop:
    """The three example services on one in-memory bus, recording what is published."""

    def __init__(
        self, engine: Engine, *, timeout: float = 30.0, with_payments: bool = True, outbox: bool = False
    ) -> None:
        self.published = Published()
        pm = plugin_manager([self.published], load_entrypoints=False)
        self.bus = Bus(MemoryBus(), hooks=pm.hook)
        self.seen = self.published.events
        self.orders = shop.build_orders(engine, timeout=timeout, tick=0.05, outbox=outbox)
        apps = [self.orders, shop.build_inventory(engine)]
        if with_payments:
            apps.append(shop.build_payments(engine))
        self.apps: list[App] = apps
        self.engine = engine

    @property
    def runner(self) -> SagaRunner:
        """The orders app's saga runner."""
        return self.orders.sagas["order"]

    def place(self, order_id: str, quantity: int = 1, amount: int = 100) -> None:
        """Publish a placed order."""
        self.bus.publish(shop.place_order(order_id, "sku-1", quantity, amount), shop.ORDERS)

    def wait_done(self, *order_ids: str) -> None:
        """Wait until every saga named has ended."""

        def done() -> bool:
            states = [self.runner.state(o) for o in order_ids]
            return all(s is not None and s.done for s in states)

        wait_until(done, what=f"sagas {order_ids} to end")

    def types(self, order_id: str) -> list[str]:
        """The event types of one saga published so far, in order."""
        return [e.get_type() for e in self.seen if e.get_extension(CORRELATION_ID) == order_id]

    def reservation(self, order_id: str) -> str | None:
        """The inventory's status for an order."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(shop.reservations.c.status).where(shop.reservations.c.order_id == order_id)
            ).scalar()


def test_an_order_completes_and_every_message_is_correlated(engine: Engine) -> None:
    """reserve -> charge -> confirm; every message carries the saga id and its cause."""
    s = Shop(engine)
    with running(s.bus, *s.apps):
        s.place("o1")
        s.wait_done("o1")
        types = s.types("o1")
    s.bus.close()
    state = s.runner.state("o1")
    assert state is not None and state.status == COMPLETED
    assert types == [
        shop.RESERVE, shop.RESERVED, shop.CHARGE, shop.CHARGED, shop.CONFIRMED,
    ]  # fmt: skip
    by_type = {e.get_type(): e for e in s.seen if e.get_extension(CORRELATION_ID) == "o1"}
    assert by_type[shop.RESERVE].get_extension(CAUSATION_ID) == "placed:o1"
    assert by_type[shop.RESERVED].get_extension(CAUSATION_ID) == by_type[shop.RESERVE].get_id()
    assert by_type[shop.CHARGE].get_extension(CAUSATION_ID) == by_type[shop.RESERVED].get_id()
    assert by_type[shop.CONFIRMED].get_extension(CAUSATION_ID) == by_type[shop.CHARGED].get_id()
    assert s.reservation("o1") == "reserved"


def test_a_declined_payment_releases_the_inventory_and_cancels(engine: Engine) -> None:
    """Declined: the reservation is released (compensation), then the order is cancelled."""
    s = Shop(engine)
    with running(s.bus, *s.apps):
        s.place("o2", amount=shop.CARD_LIMIT + 1)
        s.wait_done("o2")
        types = s.types("o2")
    s.bus.close()
    state = s.runner.state("o2")
    assert state is not None and state.status == COMPENSATED
    assert state.reason == f"charge: {shop.DECLINED}"
    assert types[-2:] == [shop.RELEASE, shop.CANCELLED]
    assert shop.REFUND not in types  # the declined step itself had nothing to undo
    wait_until(lambda: s.reservation("o2") == "released", what="the release")


def test_a_rejected_reservation_cancels_with_nothing_to_undo(engine: Engine) -> None:
    """A failure at the first step compensates nothing and cancels the order."""
    s = Shop(engine)
    with running(s.bus, *s.apps):
        s.place("o3", quantity=shop.MAX_QUANTITY + 1)
        s.wait_done("o3")
        types = s.types("o3")
    s.bus.close()
    assert types == [shop.RESERVE, shop.REJECTED, shop.CANCELLED]


def test_a_step_without_reply_times_out_and_compensates(engine: Engine) -> None:
    """With payments down, the charge times out: inventory released, refund sent, order cancelled."""
    s = Shop(engine, timeout=0.3, with_payments=False)
    with running(s.bus, *s.apps):
        s.place("o4")
        s.wait_done("o4")
        types = s.types("o4")
    s.bus.close()
    state = s.runner.state("o4")
    assert state is not None and state.status == COMPENSATED
    assert state.reason == "charge: no reply within 0.3s"
    assert types[-3:] == [shop.REFUND, shop.RELEASE, shop.CANCELLED]  # reverse order
    undo = next(e for e in s.seen if e.get_type() == shop.REFUND)
    assert undo.get_extension(CAUSATION_ID) == "order:o4:charge:do"  # the unanswered command
    assert s.reservation("o4") == "released"


def test_placing_an_order_twice_starts_one_saga(engine: Engine) -> None:
    """A repeated start event is a no-op: one reserve command, one saga."""
    s = Shop(engine)
    with running(s.bus, *s.apps):
        s.place("o5")
        s.place("o5")
        s.wait_done("o5")
        types = s.types("o5")
    s.bus.close()
    assert types.count(shop.RESERVE) == 1
    assert s.runner.counts() == {"running": 0, "completed": 1, "compensated": 0}


def test_commands_can_go_through_the_transactional_outbox(engine: Engine) -> None:
    """With outbox=True the commands are outbox rows a relay publishes; the saga still completes."""
    s = Shop(engine, outbox=True)
    relay = Relay(engine, s.bus, RelaySettings(poll_interval=0.02))
    relay.start()
    try:
        with running(s.bus, *s.apps):
            s.place("o7")
            s.place("o8", amount=shop.CARD_LIMIT + 1)
            s.wait_done("o7", "o8")
            outbox = s.runner.outbox
            assert outbox is not None
            wait_until(lambda: outbox.pending() == 0, what="the relay")
            types = s.types("o8")
    finally:
        relay.stop()
        s.bus.close()
    assert s.runner.counts() == {"running": 0, "completed": 1, "compensated": 1}
    assert types[-2:] == [shop.RELEASE, shop.CANCELLED]
    assert relay.stats().published >= 7  # o7: reserve, charge, confirmed; o8: reserve, charge, release, cancelled


# the runner on its own ------------------------------------------------------------------


def two_steps(timeout: float | None = None) -> Saga:
    """A two-step saga whose replies are 'a.ok' / 'a.no' then 'b.ok'."""
    return Saga(
        "t",
        steps=[
            Step("a", action=lambda s: Command("a.do"), compensation=lambda s: Command("a.undo"),
                 timeout=timeout, on={"a.ok": NEXT, "a.no": FAIL}),
            Step("b", action=lambda s: Command("b.do"), on={"b.ok": NEXT}),
        ],
    )  # fmt: skip


class Sent:
    """A publisher recording what a runner sends."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.lock = threading.Lock()

    def __call__(self, events: Any, topic: str) -> None:
        """Record a batch."""
        with self.lock:
            self.events.extend(events)

    def types(self) -> list[str]:
        """The types sent, in order."""
        return [e.get_type() for e in self.events]


def answer(type: str, saga_id: str, step: str, id: str = "r1") -> CloudEvent:
    """A reply to `step`'s command."""
    ext = {CORRELATION_ID: saga_id, CAUSATION_ID: f"t:{saga_id}:{step}:do"}
    return new_event(type, "/test", {}, id=id, extensions=ext)


def test_a_redelivered_or_late_reply_changes_nothing(engine: Engine) -> None:
    """The same reply twice advances once; a reply for an earlier step is ignored."""
    sent = Sent()
    runner = SagaRunner(two_steps())
    runner.bind(engine, sent)
    assert runner.start("s1", {})
    reply = answer("a.ok", "s1", "a")
    assert runner.handle_reply(reply)
    assert not runner.handle_reply(reply)
    assert not runner.handle_reply(answer("a.no", "s1", "a", id="late"))
    assert runner.handle_reply(answer("b.ok", "s1", "b", id="r2"))
    assert sent.types() == ["a.do", "b.do"]
    state = runner.state("s1")
    assert state is not None and state.status == COMPLETED and state.version == 3


def test_concurrent_deliveries_of_one_reply_advance_once(engine: Engine) -> None:
    """Six threads applying one reply at once: exactly one transition, one command sent."""
    sent = Sent()
    runner = SagaRunner(two_steps())
    runner.bind(engine, sent)
    runner.start("s2", {})
    barrier = threading.Barrier(6)
    results: list[bool] = []

    def apply() -> None:
        barrier.wait()
        try:
            results.append(runner.handle_reply(answer("a.ok", "s2", "a")))
        except RuntimeError:  # lost the compare-and-set: the runtime would retry it
            results.append(False)

    threads = [threading.Thread(target=apply) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results.count(True) == 1
    assert sent.types() == ["a.do", "b.do"]


def test_two_timeout_loops_claim_an_expired_saga_once(engine: Engine) -> None:
    """Two runners expiring at once compensate each saga exactly once."""
    now = [100.0]
    sent = Sent()
    first, second = (SagaRunner(two_steps(timeout=5), clock=lambda: now[0]) for _ in range(2))
    first.bind(engine, sent)
    second.bind(engine, sent)
    for n in range(5):
        first.start(f"x{n}", {})
    assert first.expire() == 0  # not due yet
    now[0] += 6
    counts: list[int] = []
    threads = [threading.Thread(target=lambda r=r: counts.append(r.expire())) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == 5
    assert sent.types().count("a.undo") == 5
    assert first.counts() == {"running": 0, "completed": 0, "compensated": 5}


def test_bad_saga_definitions_name_field_value_and_rule() -> None:
    """A wrong reply outcome, a timeout without replies and a repeated step name are refused."""
    with pytest.raises(ValidationError) as bad_outcome:
        Step("a", action=lambda s: None, on={"x": "skip"})
    assert bad_outcome.value.problems[0].field == "step 'a'.on['x']"
    with pytest.raises(ValidationError, match="needs replies"):
        Step("a", action=lambda s: None, timeout=3)
    with pytest.raises(ValidationError, match="step name used twice"):
        Saga("s", steps=[Step("a", action=lambda s: None), Step("a", action=lambda s: None)])


def test_an_unbound_runner_says_to_start_the_app_first() -> None:
    """Starting a saga before the App started fails with a one-line reason, not a traceback."""
    with pytest.raises(ValidationError, match="start the App"):
        SagaRunner(two_steps()).start("s", {})


def test_saga_data_that_is_not_json_is_refused(engine: Engine) -> None:
    """Starting with data JSON cannot hold fails naming the field, before anything is stored."""
    runner = SagaRunner(two_steps())
    runner.bind(engine, Sent())
    with pytest.raises(ValidationError) as failure:
        runner.start("bad", {"when": object()})
    assert failure.value.problems[0].field == "data"
    assert runner.state("bad") is None


def test_start_async_runs_off_the_loop(engine: Engine) -> None:
    """An async handler starts a saga with start_async; the first command is sent."""
    sent = Sent()
    runner = SagaRunner(two_steps())
    runner.bind(engine, sent)
    assert asyncio.run(runner.start_async("as", {"n": 1}))
    assert sent.types() == ["a.do"]


def test_a_start_interrupted_before_its_first_step_is_resumed(engine: Engine) -> None:
    """A saga stored but whose first command never went out (a crash) gets it on the next start."""
    sent = Sent()
    runner = SagaRunner(two_steps())
    runner.bind(engine, sent)
    with engine.begin() as conn:  # what the first of start's two transactions leaves behind
        runner.store.insert(conn, SagaState("t", "r1", RUNNING, 0, {"n": 1}))
    assert runner.start("r1", {"n": 1})
    assert not runner.start("r1", {"n": 1})
    assert sent.types() == ["a.do"]
