"""`join: all`: a service that acts once per flow instance, after one event of every consumed topic."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.errors import ConfigError
from polybus.sim.engine import Model
from polybus.sim.executors import engine_for
from polybus.sim.fastpath import fast_plan
from polybus.sim.from_traces import derive
from polybus.sim.live import prepare, run_live
from polybus.sim.loader import parse_scenario
from polybus.sim.schema import scenario_schema
from polybus.sim.streams import Streams
from polybus.sim.topology import Scenario
from tests.sim.helpers import exp

MEAN_A, MEAN_B = 0.010, 0.020  # the two parallel branches' exponential service times


def split_join(join: object = "all", p_b: float = 1.0, **service: Any) -> dict[str, Any]:
    """order -> (stock, payment in parallel) -> confirm (the join) -> a read model from the flow's start."""
    confirm: dict[str, Any] = {
        "workers": 50, "service_time": 0.0, "consumes": ["reserved", "charged"],
        "publish": "confirmed", **service,
    }  # fmt: skip
    if join is not None:
        confirm["join"] = join
    return {
        "name": "split-join", "duration": 220.0, "warmup": 20.0, "provider": "ideal",
        "sample_interval": 10.0,
        "workload": {"order": {"rate": 10.0}},
        "topologies": {"event": {
            "entry": {"order": "orders"},
            "services": {
                "orders": {"workers": 50, "service_time": 0.0, "publish": "placed"},
                "stock": {"workers": 50, "service_time": exp(MEAN_A), "consumes": "placed",
                          "publish": "reserved"},
                "payment": {"workers": 50, "service_time": exp(MEAN_B), "consumes": "placed",
                            "publish": {"topic": "charged", "p": p_b}},
                "confirm": confirm,
            },
            "read_models": {"status": {"consumes": "confirmed", "since": "flow"}},
        }},
    }  # fmt: skip


def run(sc: Scenario, replication: int = 0) -> Model:
    """One replication of the event topology with the SimPy engine (the model, to inspect)."""
    model = Model(sc, sc.topologies["event"], Streams(sc.seed, replication))
    model.run()
    return model


def test_join_waits_for_the_slower_branch_as_theory_says() -> None:
    """Confirmations come at max(X, Y): mean 1/a + 1/b - 1/(a+b), within 3 sd of R replications."""
    sc = parse_scenario(split_join())
    a, b = 1 / MEAN_A, 1 / MEAN_B
    theory = 1 / a + 1 / b - 1 / (a + b)
    means = [float(np.mean(run(sc, r).rec.windows["status"])) for r in range(6)]
    sd = float(np.std(means, ddof=1))
    assert abs(float(np.mean(means)) - theory) < 3 * sd / math.sqrt(len(means))
    assert float(np.mean(means)) > MEAN_B  # longer than either branch alone: not a race


def test_join_acts_once_per_flow_instance() -> None:
    """Each completed order is confirmed exactly once, and no partial join outlives its flow."""
    model = run(parse_scenario({**split_join(), "warmup": 0.0}))  # every publish counted
    confirmed = model.rec.topics["confirmed"]
    placed = model.rec.topics["placed"]
    assert confirmed.published == placed.published - model.joins_open
    assert model.joins_abandoned == 0
    assert model.joins_open <= 2  # only orders still in progress at the end of the window


def test_without_a_join_each_input_publishes() -> None:
    """The same topology without `join` confirms twice per order (once per input)."""
    model = run(parse_scenario(split_join(join=None)))
    assert model.rec.topics["confirmed"].published == pytest.approx(
        2 * model.rec.topics["placed"].published, abs=4
    )


def test_missing_input_abandons_the_join_with_its_flow() -> None:
    """When one input never comes, the flow still ends and its partial join goes with it."""
    model = run(parse_scenario({**split_join(p_b=0.5), "warmup": 0.0}))
    placed = model.rec.topics["placed"].published
    charged = model.rec.topics["charged"].published
    assert model.rec.topics["confirmed"].published == pytest.approx(charged, abs=4)
    assert model.joins_abandoned == pytest.approx(placed - charged, abs=4)
    assert model.joins_abandoned > placed * 0.3
    assert len(model.rec.live) < 5  # abandoned joins did not keep their flows alive


def test_open_joins_are_counted_at_the_end() -> None:
    """A run that ends mid-flow reports the joins still waiting for an input."""
    slow = split_join()
    slow["topologies"]["event"]["services"]["payment"]["service_time"] = 30.0
    model = run(parse_scenario({**slow, "duration": 25.0, "warmup": 0.0}))
    assert model.rec.topics["confirmed"].published == 0  # no payment finishes within 25 s
    assert model.joins_open > 150  # about 10 orders/s, each waiting for its payment
    assert 0 <= len(model.rec.live) - model.joins_open <= 3  # the rest: stock still at work


def test_join_needs_the_simpy_engine() -> None:
    """`auto` picks SimPy for a topology with a join; the fast path says why not."""
    sc = parse_scenario(split_join())
    one = replace(sc, topologies={"event": replace(sc.topologies["event"], read_models={})})
    assert fast_plan(one, one.topologies["event"]) == "joins need the SimPy engine"
    assert engine_for(one, "event") == "simpy"


def test_join_on_one_topic_is_an_error_naming_the_field() -> None:
    """`join` on a service consuming fewer than two topics is rejected with the rule."""
    doc = split_join()
    doc["topologies"]["event"]["services"]["stock"]["join"] = "all"
    with pytest.raises(ConfigError) as err:
        parse_scenario(doc)
    text = str(err.value)
    assert "topologies.event.services.stock.join" in text
    assert "2 or more topics" in text


def test_join_value_other_than_all_is_an_error() -> None:
    """`join: first` (a call's spelling) is not a service's: the error names field and rule."""
    with pytest.raises(ConfigError) as err:
        parse_scenario(split_join(join={"first": 1}))
    assert "topologies.event.services.confirm.join" in str(err.value)
    assert "must be 'all'" in str(err.value)


def test_misspelt_join_gets_a_did_you_mean() -> None:
    """An unknown key near `join` is reported with a did-you-mean."""
    doc = split_join(join=None)
    doc["topologies"]["event"]["services"]["confirm"]["joins"] = "all"
    with pytest.raises(ConfigError, match="did you mean 'join'"):
        parse_scenario(doc)


def test_schema_publishes_join() -> None:
    """The JSON Schema allows `join: all` on a service."""
    service = scenario_schema()["properties"]["topologies"]["additionalProperties"]
    props = service["properties"]["services"]["additionalProperties"]["properties"]
    assert props["join"]["const"] == "all"


def test_live_run_joins_like_the_simulation() -> None:
    """`sim live` on a join scenario: one confirmation per order, after both inputs, none without."""
    doc = {**split_join(), "duration": 3.0, "warmup": 0.5}
    sc = prepare(parse_scenario(doc), provider="local", duration=3.0)
    with Bus(MemoryBus()) as bus:
        live = run_live(sc, "event", bus=bus)
    topics = live.measures.topics
    assert topics["placed"].published > 10
    assert abs(topics["confirmed"].published - topics["charged"].published) <= 2
    assert abs(topics["confirmed"].published - topics["placed"].published) <= 2
    confirms = [s for s in live.spans if s.name == "send confirmed"]
    assert len({s.trace_id for s in confirms}) == len(confirms)  # once per flow instance
    rebuilt = derive(live.spans)["topologies"]["event"]["services"]
    assert rebuilt["confirm"]["join"] == "all"  # from-traces sees the join in the live spans
    assert "join" not in rebuilt["stock"]
