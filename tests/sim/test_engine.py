"""Semantics of the SimPy engine: timeouts, retries, outages, the broker, read models, CRN."""

from __future__ import annotations

import itertools
import math

import pytest

from polybus.sim.engine import Model, simulate
from polybus.sim.loader import parse_scenario
from polybus.sim.streams import Streams
from tests.sim.helpers import exp


def _sync(callee_time: float, **call: object) -> dict:
    return {
        "name": "sync",
        "duration": 50.0,
        "warmup": 0.0,
        "workload": {"req": {"rate": 1.0}},
        "topologies": {
            "t": {
                "entry": {"req": "gw"},
                "services": {
                    "gw": {"workers": 100, "service_time": 0.0, "calls": [{"to": "slow", **call}]},
                    "slow": {"workers": 100, "service_time": callee_time},
                },
            }
        },
    }


def test_timeout_and_retries_add_up() -> None:
    """A 2 s callee behind a 0.5 s timeout with 2 retries (backoff 0.1 doubling) times out after 0.5*3 + 0.1 + 0.2 s."""
    sc = parse_scenario(_sync(2.0, timeout=0.5, retries=2, backoff=0.1))
    rec = Model(sc, sc.topologies["t"], Streams(1, 0)).run()
    f = rec.flows["req"]
    assert set(f.status) == {2}
    assert f.response == pytest.approx([1.8] * len(f.response))
    assert (
        0 <= rec.stations["slow"].arrivals - 3 * len(f.response) <= 9
    )  # requests still retrying at the end


def test_call_within_timeout_succeeds() -> None:
    """A 0.2 s callee under a 0.5 s timeout answers first time: latency 0.2 s, no retry."""
    sc = parse_scenario(_sync(0.2, timeout=0.5, retries=2))
    f = Model(sc, sc.topologies["t"], Streams(1, 0)).run().flows["req"]
    assert set(f.status) == {0}
    assert f.response == pytest.approx([0.2] * len(f.response))


def test_first_k_join_waits_for_the_fastest() -> None:
    """join {first: 1} over a fast and a slow callee answers as soon as the fast one does."""
    raw = {
        "name": "firstk",
        "duration": 20.0,
        "workload": {"req": {"rate": 2.0}},
        "topologies": {
            "t": {
                "entry": {"req": "gw"},
                "services": {
                    "gw": {
                        "workers": 50,
                        "service_time": 0.0,
                        "calls": [{"fanout": ["fast", "slow"], "join": {"first": 1}}],
                    },
                    "fast": {"workers": 50, "service_time": 0.05},
                    "slow": {"workers": 50, "service_time": 1.0},
                },
            }
        },
    }
    sc = parse_scenario(raw)
    f = Model(sc, sc.topologies["t"], Streams(2, 0)).run().flows["req"]
    assert f.response == pytest.approx([0.05] * len(f.response))


OUTAGE = {
    "name": "outage",
    "duration": 240.0,
    "warmup": 20.0,
    "provider": "local",
    "sample_interval": 1.0,
    "workload": {"order": {"rate": 20.0}},
    "faults": [{"service": "billing", "outage": True, "start": 60.0, "end": 90.0}],
    "topologies": {
        "request": {
            "entry": {"order": "gw"},
            "services": {
                "gw": {
                    "workers": 50,
                    "service_time": exp(0.002),
                    "calls": [{"to": "billing", "timeout": 1.0}],
                },
                "billing": {"workers": 4, "service_time": exp(0.02)},
            },
        },
        "event": {
            "entry": {"order": "gw"},
            "topics": {"orders": {"max_attempts": 20, "retry_initial": 1.0, "retry_max": 8.0}},
            "services": {
                "gw": {"workers": 50, "service_time": exp(0.002), "publish": ["orders"]},
                "billing": {"workers": 4, "service_time": exp(0.02), "consumes": ["orders"]},
            },
        },
    },
}


def test_outage_cascades_synchronously_and_buffers_asynchronously() -> None:
    """During a billing outage the request topology fails at the gateway; the event one accepts, buffers and drains."""
    sc = parse_scenario(OUTAGE)
    req = simulate(sc, "request", 3, 0).faults[0]
    evt = simulate(sc, "event", 3, 0).faults[0]
    assert req.during.success_rate < 0.05
    assert req.before.success_rate == 1.0
    assert evt.during.success_rate == 1.0
    assert evt.peak_backlog > 20 * 30 * 0.5
    assert 0 < evt.drain_time < 60


def test_dead_letter_after_max_attempts() -> None:
    """A consumer that always fails sends every event to the dead-letter target after max_attempts deliveries."""
    raw = {
        "name": "dlq",
        "duration": 30.0,
        "provider": "local",
        "workload": {"e": {"rate": 5.0}},
        "topologies": {
            "t": {
                "entry": {"e": "gw"},
                "topics": {"x": {"max_attempts": 3, "retry_initial": 0.1, "retry_multiplier": 1.0}},
                "services": {
                    "gw": {"workers": 10, "service_time": 0.0, "publish": ["x"]},
                    "bad": {
                        "workers": 10,
                        "service_time": 0.001,
                        "error_rate": 1.0,
                        "consumes": ["x"],
                    },
                },
            }
        },
    }
    sc = parse_scenario(raw)
    t = simulate(sc, "t", 4, 0).topics["x"]
    assert t.dead_lettered > 0
    assert t.deliveries == pytest.approx(3 * t.dead_lettered, abs=6)


def test_read_model_stale_curve_is_a_decreasing_survival_function() -> None:
    """P(stale at t) falls with t, starts near 1 below the broker latency, and matches the window sample."""
    raw = {
        "name": "rm",
        "duration": 60.0,
        "provider": "aws",
        "stale_grid": [0.01, 0.1, 0.2, 0.5, 1.0, 3.0],
        "workload": {"w": {"rate": 30.0}},
        "topologies": {
            "t": {
                "entry": {"w": "api"},
                "services": {"api": {"workers": 20, "service_time": 0.001, "publish": ["changed"]}},
                "read_models": {
                    "view": {"consumes": ["changed"], "workers": 1, "projection_time": exp(0.005)}
                },
            }
        },
    }
    sc = parse_scenario(raw)
    rec = Model(sc, sc.topologies["t"], Streams(5, 0)).run()
    res = rec.result()
    curve = res.read_models["view"].p_stale
    assert all(a >= b for a, b in itertools.pairwise(curve))
    assert curve[0] > 0.99
    w = rec.windows["view"]
    assert curve[2] == pytest.approx(sum(x > 0.2 for x in w) / len(w))


def test_common_random_numbers_across_topologies() -> None:
    """Both topologies see the same arrivals and the same service times at a shared service."""
    sc = parse_scenario({**OUTAGE, "faults": []})
    a = Model(sc, sc.topologies["request"], Streams(9, 0)).run()
    b = Model(sc, sc.topologies["event"], Streams(9, 0)).run()
    assert sorted(a.flows["order"].t0) == sorted(b.flows["order"].t0)
    assert a.stations["billing"].busy_area == pytest.approx(
        b.stations["billing"].busy_area, rel=0.05
    )


def test_slowdown_multiplies_service_time() -> None:
    """A slowdown by 4 during [10, 20) makes deterministic 0.1 s work take 0.4 s in that window only."""
    raw = {
        "name": "slow",
        "duration": 30.0,
        "workload": {"r": {"rate": 2.0}},
        "faults": [{"service": "s", "slowdown": 4, "start": 10, "end": 20}],
        "topologies": {
            "t": {"entry": {"r": "s"}, "services": {"s": {"workers": 100, "service_time": 0.1}}}
        },
    }
    sc = parse_scenario(raw)
    f = Model(sc, sc.topologies["t"], Streams(1, 0)).run().flows["r"]
    for t0, lat in zip(f.t0, f.response, strict=True):
        assert math.isclose(lat, 0.4 if 10 <= t0 < 20 else 0.1)
