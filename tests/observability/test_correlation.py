"""The CloudEvents correlation extension, set automatically through a multi-hop flow."""

from __future__ import annotations

from typing import Any

from polybus.app import App
from polybus.core.correlation import correlation_attributes, correlation_id
from polybus.core.events import new_event
from polybus.core.runtime import Context
from polybus.testing import TestBus


def three_hops() -> App:
    """An app turning a.one into b.two (async handler) into c.three (sync handler)."""
    app = App("hops")

    @app.subscriber("first", topic="t", filter="type = 'a.one'")
    async def first(event: Any, ctx: Context) -> None:
        await ctx.publish(new_event("b.two", "/hops", {}), topic="t")

    @app.subscriber("second", topic="t", filter="type = 'b.two'")
    def second(event: Any, ctx: Context) -> None:
        ctx.publish_now(new_event("c.three", "/hops", {}), topic="t")

    return app


def test_correlation_and_causation_through_three_hops() -> None:
    """Each hop's causationid is the event it handled; correlationid is the first event's id."""
    with TestBus(three_hops()) as bus:
        start = new_event("a.one", "/hops", {})
        bus.publish(start, topic="t")
        one, two, three = sorted(bus.published("t"), key=lambda e: e.get_type())
    assert one.get_id() == start.get_id()
    assert one.get_extension("correlationid") is None  # published outside a handler: left as is
    assert correlation_id(one) == start.get_id()  # ... and read as its own flow
    assert one.get_extension("causationid") is None
    assert two.get_extension("causationid") == one.get_id()
    assert three.get_extension("causationid") == two.get_id()
    assert {e.get_extension("correlationid") for e in (two, three)} == {start.get_id()}


def test_a_flow_keeps_the_correlation_id_it_was_given() -> None:
    """An event published with a correlationid keeps it, and the flow carries it forward."""
    with TestBus(three_hops()) as bus:
        bus.publish(new_event("a.one", "/hops", {}, extensions={"correlationid": "basket-7"}), "t")
        ids = {e.get_extension("correlationid") for e in bus.published("t")}
    assert ids == {"basket-7"}


def test_explicit_attributes_are_kept() -> None:
    """Only missing correlation attributes are added; names are valid CloudEvents extensions."""
    cause = new_event("a.one", "/x", {}, extensions={"correlationid": "flow"})
    own = new_event("b.two", "/x", {}, extensions={"causationid": "mine"})
    assert correlation_attributes(own, cause) == {"correlationid": "flow"}
    plain = new_event("b.two", "/x", {})
    added = correlation_attributes(plain, None)
    assert added == {"correlationid": plain.get_id()}
    assert all(name.isalnum() and name.islower() for name in correlation_attributes(plain, cause))
