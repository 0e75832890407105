"""The vectorised Lindley engine against the SimPy engine on the same seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polybus.sim.engine import simulate
from polybus.sim.fastpath import fast_plan, lindley_departures, lindley_waits, simulate_fast
from polybus.sim.loader import parse_scenario
from polybus.sim.results import Replication
from tests.sim.helpers import exp, station


def _same(a: Replication, b: Replication) -> None:
    for flow, fa in a.flows.items():
        fb = b.flows[flow]
        assert fa.count == fb.count
        assert fa.in_progress == fb.in_progress
        assert math.isclose(fa.not_completed_rate, fb.not_completed_rate, rel_tol=1e-9)
        assert math.isclose(fa.latency.mean, fb.latency.mean, rel_tol=1e-9)
        assert math.isclose(fa.completion.mean, fb.completion.mean, rel_tol=1e-9)
        assert fa.latency.p99 == pytest.approx(fb.latency.p99, rel=0.005)
    for name, sa in a.services.items():
        for key in ("L", "W", "Wq", "utilisation", "lambda_", "offered"):
            assert math.isclose(getattr(sa, key), getattr(b.services[name], key), rel_tol=1e-9), key
    for name, ta in a.topics.items():
        for key in ("published", "publish_requests", "throttled", "publish_failed", "deliveries"):
            assert getattr(ta, key) == getattr(b.topics[name], key), key
    assert a.backlog.in_flight == b.backlog.in_flight


def test_lindley_matches_the_textbook_recursion() -> None:
    """The vectorised form equals W_{n+1} = max(0, W_n + S_n - (A_{n+1} - A_n)) computed in a loop."""
    rng = np.random.default_rng(1)
    a = np.cumsum(rng.exponential(1.0, 2000))
    s = rng.exponential(0.9, 2000)
    w, loop = lindley_waits(a, s), [0.0]
    for n in range(1, len(a)):
        loop.append(max(0.0, loop[-1] + s[n - 1] - (a[n] - a[n - 1])))
    assert np.allclose(w, loop)


def test_lindley_carries_state_across_windows() -> None:
    """Splitting the arrivals into two windows and carrying the last departure changes nothing."""
    rng = np.random.default_rng(2)
    a = np.cumsum(rng.exponential(1.0, 1000))
    s = rng.exponential(0.95, 1000)
    whole = lindley_departures(a, s)
    first = lindley_departures(a[:400], s[:400])
    second = lindley_departures(a[400:], s[400:], first[-1])
    assert np.allclose(np.concatenate([first, second]), whole)


def test_mm1_fast_equals_simpy_on_same_seed() -> None:
    """M/M/1: both engines give every customer the same wait, so every metric agrees."""
    sc = station(0.9, exp(1.0), duration=3000.0, warmup=100.0)
    _same(simulate(sc, "one", 5, 0), simulate_fast(sc, "one", 5, 0))


def test_throttled_partitioned_ingest_fast_equals_simpy() -> None:
    """Devices -> quota-limited topic -> 4 FIFO lanes: same admissions, throttles and waits in both engines."""
    raw = {
        "name": "ingest",
        "duration": 120.0,
        "warmup": 10.0,
        "provider": "aws",
        "workload": {
            "tele": {"pattern": "periodic", "devices": 2000, "period": 10.0, "jitter": 1.0}
        },
        "topologies": {
            "one": {
                "entry": {"tele": "readings"},
                "topics": {"readings": {"publish_quota": 180, "delivery_quota": 200}},
                "services": {
                    "ingest": {
                        "workers": 1,
                        "partitions": 4,
                        "consumes": "readings",
                        "service_time": exp(0.018),
                    }
                },
            }
        },
    }
    sc = parse_scenario(raw)
    a, b = simulate(sc, "one", 6, 0), simulate_fast(sc, "one", 6, 0)
    assert a.topics["readings"].throttled > 0
    _same(a, b)


def test_fast_plan_refuses_what_it_cannot_model() -> None:
    """Multi-worker stations and faults fall back to SimPy, with the reason."""
    assert "single-worker" in str(
        fast_plan(
            station(1.0, exp(0.5), workers=2), station(1.0, exp(0.5), workers=2).topologies["one"]
        )
    )
    faulty = station(
        1.0, exp(0.5), faults=[{"service": "s", "outage": True, "start": 10, "end": 20}]
    )
    assert "faults" in str(fast_plan(faulty, faulty.topologies["one"]))


def test_batching_publisher_fast_equals_simpy() -> None:
    """A batching publisher (Pub/Sub's 100 messages / 10 ms): same batches, latencies and waits in both engines."""
    raw = {
        "name": "batched",
        "duration": 30.0,
        "warmup": 5.0,
        "provider": "gcp",
        "workload": {"tele": {"pattern": "poisson", "rate": 2000.0, "devices": 5000}},
        "topologies": {
            "one": {
                "entry": {"tele": "readings"},
                "topics": {"readings": {"batch_size": 20, "linger": 0.01}},
                "services": {
                    "ingest": {
                        "workers": 1,
                        "partitions": 2,
                        "consumes": "readings",
                        "service_time": exp(0.0005),
                    }
                },
            }
        },
    }
    sc = parse_scenario(raw)
    a, b = simulate(sc, "one", 8, 0), simulate_fast(sc, "one", 8, 0)
    assert a.topics["readings"].publish_requests < a.topics["readings"].published / 5
    _same(a, b)
