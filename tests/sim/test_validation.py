"""The engine against closed forms from queueing theory, with CI-based tolerances over replications."""

from __future__ import annotations

import math

from polybus.sim.engine import Model, simulate
from polybus.sim.fastpath import simulate_fast
from polybus.sim.loader import parse_scenario
from polybus.sim.stats import within
from polybus.sim.streams import Streams
from polybus.sim.theory import (
    fanout_slow,
    jackson,
    max_exp_mean,
    mm1_sojourn_quantile,
    mm1_wq,
    mmc_wq,
    pk_wq,
)
from tests.sim.helpers import exp, station

REPS = 30


def test_mm1_mean_wait_matches_theory() -> None:
    """M/M/1 at rho=0.8: mean wait in queue over 30 replications is rho/(mu-lam) within 3 sd/sqrt(R)."""
    sc = station(0.8, exp(1.0), duration=60000.0, warmup=2000.0)
    wq = [simulate_fast(sc, "one", 11, r).services["s"].Wq for r in range(REPS)]
    assert within(wq, mm1_wq(0.8, 1.0))


def test_mm1_sojourn_quantile_matches_theory() -> None:
    """M/M/1 sojourn p95 equals -ln(0.05)/(mu-lam) within the replication CI (plus the 0.23% histogram bin)."""
    sc = station(0.8, exp(1.0), duration=60000.0, warmup=2000.0)
    p95 = [simulate_fast(sc, "one", 12, r).flows["q"].latency.p95 for r in range(REPS)]
    theory = mm1_sojourn_quantile(0.8, 1.0, 0.95)
    assert within(p95, theory, slack=0.003 * theory)


def test_md1_matches_pollaczek_khinchine() -> None:
    """M/D/1 at rho=0.8: mean wait is lam E[S^2] / (2(1-rho)), half the M/M/1 wait."""
    sc = station(0.8, {"dist": "deterministic", "value": 1.0}, duration=60000.0, warmup=2000.0)
    wq = [simulate_fast(sc, "one", 13, r).services["s"].Wq for r in range(REPS)]
    assert within(wq, pk_wq(0.8, 1.0, 1.0))
    assert math.isclose(pk_wq(0.8, 1.0, 1.0), mm1_wq(0.8, 1.0) / 2)


def test_mg1_lognormal_matches_pollaczek_khinchine() -> None:
    """M/G/1 with log-normal service: P-K holds for a non-exponential, non-deterministic law too."""
    service = {"dist": "lognormal", "mean": 1.0, "sd": 0.5}
    sc = station(0.7, service, duration=60000.0, warmup=2000.0)
    wq = [simulate_fast(sc, "one", 14, r).services["s"].Wq for r in range(REPS)]
    assert within(wq, pk_wq(0.7, 1.0, 1.25))


def test_mmc_matches_erlang_c() -> None:
    """M/M/3 at rho=0.7 on the SimPy engine: mean wait is C(3, a)/(3 mu - lam) (Erlang C)."""
    sc = station(2.1, exp(1.0), workers=3, duration=4000.0, warmup=200.0)
    wq = [simulate(sc, "one", 15, r).services["s"].Wq for r in range(10)]
    assert within(wq, mmc_wq(2.1, 1.0, 3))


JACKSON = {
    "name": "jackson",
    "duration": 6000.0,
    "warmup": 300.0,
    "provider": "ideal",
    "sample_interval": 50.0,
    "workload": {"job": {"rate": 0.5}},
    "topologies": {
        "net": {
            "entry": {"job": "a"},
            "services": {
                "a": {
                    "workers": 1,
                    "service_time": exp(1.0),
                    "consumes": ["ca"],
                    "publish": ["ab"],
                },
                "b": {
                    "workers": 2,
                    "service_time": exp(2.5),
                    "consumes": ["ab"],
                    "publish": [{"topic": "bc", "p": 0.6}],
                },
                "c": {
                    "workers": 1,
                    "service_time": exp(0.8),
                    "consumes": ["bc"],
                    "publish": [{"topic": "ca", "p": 0.3}],
                },
            },
        }
    },
}


def test_open_jackson_network_matches_theory() -> None:
    """A 3-node event pipeline with feedback (a->b->c->a): per-node L and network sojourn match Jackson."""
    sc = parse_scenario(JACKSON)
    runs = [simulate(sc, "net", 16, r) for r in range(8)]
    lam, ls, w = jackson(
        [0.5, 0, 0], [[0, 1, 0], [0, 0, 0.6], [0.3, 0, 0]], [1.0, 0.4, 1.25], [1, 2, 1]
    )
    for i, name in enumerate("abc"):
        assert within([r.services[name].lambda_ for r in runs], lam[i])
        assert within([r.services[name].L for r in runs], ls[i])
    assert within([r.flows["job"].completion.mean for r in runs], w)


def test_littles_law_holds_on_every_station() -> None:
    """L = lam W on every station of the Jackson network and of a synchronous chain with fan-out."""
    chain = {
        "name": "chain",
        "duration": 800.0,
        "warmup": 50.0,
        "workload": {"req": {"rate": 20.0}},
        "topologies": {
            "sync": {
                "entry": {"req": "gw"},
                "services": {
                    "gw": {"workers": 8, "service_time": exp(0.005), "calls": [{"to": "mid"}]},
                    "mid": {
                        "workers": 4,
                        "service_time": exp(0.01),
                        "calls": [{"fanout": "leaf", "n": 3}],
                    },
                    "leaf": {"workers": 6, "service_time": exp(0.02)},
                },
            }
        },
    }
    for raw, top in ((JACKSON, "net"), (chain, "sync")):
        sc = parse_scenario(raw)
        for r in range(3):
            for name, st in simulate(sc, top, 17, r).services.items():
                assert st.little_gap < 0.02, (top, name, st)


def test_fanout_tail_probability() -> None:
    """Waiting for all of n=5 calls, each slow with p=0.05: P(slow) = 1-(1-p)^n (The Tail at Scale)."""
    leaf = {
        "dist": "mixture",
        "components": [
            {"weight": 0.95, "dist": "deterministic", "value": 0.01},
            {"weight": 0.05, "dist": "deterministic", "value": 1.0},
        ],
    }
    raw = {
        "name": "fanout",
        "duration": 200.0,
        "warmup": 0.0,
        "workload": {"req": {"rate": 20.0}},
        "topologies": {
            "sync": {
                "entry": {"req": "gw"},
                "services": {
                    "gw": {
                        "workers": 500,
                        "service_time": 0.0,
                        "calls": [{"fanout": "leaf", "n": 5}],
                    },
                    "leaf": {"workers": 500, "service_time": leaf},
                },
            }
        },
    }
    sc = parse_scenario(raw)
    fractions = []
    for r in range(10):
        rec = Model(sc, sc.topologies["sync"], Streams(18, r)).run()
        lat = rec.flows["req"].response
        fractions.append(sum(x > 0.5 for x in lat) / len(lat))
    assert within(fractions, fanout_slow(0.05, 5))


def test_fanout_mean_is_max_of_exponentials() -> None:
    """Without queueing, waiting for all of n Exp(mu) calls takes H_n/mu on average."""
    raw = {
        "name": "maxexp",
        "duration": 250.0,
        "warmup": 0.0,
        "workload": {"req": {"rate": 10.0}},
        "topologies": {
            "sync": {
                "entry": {"req": "gw"},
                "services": {
                    "gw": {
                        "workers": 500,
                        "service_time": 0.0,
                        "calls": [{"fanout": "leaf", "n": 8}],
                    },
                    "leaf": {"workers": 2000, "service_time": exp(0.1)},
                },
            }
        },
    }
    sc = parse_scenario(raw)
    means = [simulate(sc, "sync", 19, r).flows["req"].latency.mean for r in range(10)]
    assert within(means, max_exp_mean(8, 10.0))
