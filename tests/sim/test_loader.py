"""Scenario validation: every problem reported at once, naming file, YAML path and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from polybus.core.errors import ConfigError
from polybus.sim.broker import load_profile, monthly_cost, profile_sources
from polybus.sim.distributions import Exponential, LogNormal, Mixture, parse_distribution
from polybus.sim.loader import load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_every_problem_is_reported_with_file_path_and_rule(tmp_path: Path) -> None:
    """A file with three mistakes raises one ConfigError naming the file and each YAML path and rule."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        """
name: bad
workload: {checkout: {rate: -1}}
topologies:
  request:
    entry: {checkout: gateway}
    services:
      gateway: {workers: 0, service_time: {dist: gamma}, calls: [{to: nowhere}]}
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_scenario(bad)
    text = str(err.value)
    assert str(bad) in text
    fields = {p.field for p in err.value.problems}
    assert {
        "workload.checkout.rate",
        "topologies.request.services.gateway.workers",
        "topologies.request.services.gateway.service_time.dist",
        "topologies.request.services.gateway.calls[0]",
    } <= fields
    assert "must be an integer >= 1" in text


def test_synchronous_call_cycles_are_rejected() -> None:
    """a calls b calls a would deadlock a layered queue: the loader refuses it."""
    raw = {
        "workload": {"r": {"rate": 1}},
        "topologies": {
            "t": {
                "entry": {"r": "a"},
                "services": {
                    "a": {"workers": 1, "service_time": 0.1, "calls": [{"to": "b"}]},
                    "b": {"workers": 1, "service_time": 0.1, "calls": [{"to": "a"}]},
                },
            }
        },
    }
    with pytest.raises(ConfigError, match="cycle"):
        parse_scenario(raw)


def test_consumed_topic_must_be_published() -> None:
    """A service consuming a topic nobody publishes is a typo: reported with its path."""
    raw = {
        "workload": {"r": {"rate": 1}},
        "topologies": {
            "t": {
                "entry": {"r": "a"},
                "services": {
                    "a": {"workers": 1, "service_time": 0.1, "publish": ["orders"]},
                    "b": {"workers": 1, "service_time": 0.1, "consumes": ["order"]},
                },
            }
        },
    }
    with pytest.raises(ConfigError) as err:
        parse_scenario(raw)
    assert err.value.problems[0].field == "topologies.t.services.b.consumes"


def test_overrides_reach_nested_values_and_report_bad_paths() -> None:
    """Dotted overrides set nested values (for --duration and sweeps); a missing parent is a problem."""
    sc = load_scenario(
        SCENARIOS / "shopping_cart.yaml", {"workload.checkout.rate": 10, "duration": 50}
    )
    assert sc.workloads[0].rate == 10 and sc.duration == 50
    with pytest.raises(ConfigError, match="override path does not exist"):
        load_scenario(SCENARIOS / "shopping_cart.yaml", {"workload.nope.rate": 10})


def test_distribution_forms() -> None:
    """Numbers are deterministic; lognormal from median+p99 hits both; mixtures need weights summing to 1."""
    problems: list = []
    ln = parse_distribution({"dist": "lognormal", "median": 0.148, "p99": 0.387}, "x", problems)
    assert isinstance(ln, LogNormal)
    assert ln.mu == pytest.approx(-1.9105, abs=1e-3)
    assert isinstance(
        parse_distribution({"dist": "exponential", "rate": 4}, "x", problems), Exponential
    )
    mix = parse_distribution(
        {
            "dist": "mixture",
            "components": [
                {"weight": 0.5, "dist": "deterministic", "value": 1},
                {"weight": 0.5, "dist": "deterministic", "value": 3},
            ],
        },
        "x",
        problems,
    )
    assert isinstance(mix, Mixture) and mix.mean == 2.0 and mix.second_moment == 5.0
    assert not problems
    parse_distribution(
        {"dist": "mixture", "components": [{"weight": 0.3, "dist": "deterministic", "value": 1}]},
        "y",
        problems,
    )
    assert problems[0].field == "y.components"


def test_every_profile_number_has_a_source_and_date() -> None:
    """Each provider profile field carries a value, a source and the date it was read."""
    for name in ("aws", "azure", "gcp", "local", "ideal"):
        fields = profile_sources(name)
        assert "publish_quota" in fields and "pricing" in fields
        for field, entry in fields.items():
            assert entry["source"], (name, field)
            assert entry["read"], (name, field)
        load_profile(name)


def test_monthly_cost_per_provider() -> None:
    """1,000 events/s of 1 KB for a month: EventBridge 1 USD/M events; Event Grid counts deliveries; Pub/Sub bills bytes."""
    aws = monthly_cost(load_profile("aws"), 1000, 1000, 1000)
    assert aws == pytest.approx(1000 * 30 * 86400 / 1e6 * 1.0)
    azure = monthly_cost(load_profile("azure"), 1000, 1000, 1000)
    assert azure == pytest.approx((2000 * 30 * 86400 - 100_000) / 1e6 * 0.60)
    gcp = monthly_cost(load_profile("gcp"), 1000, 1000, 10)
    assert 0 < gcp < aws
    assert monthly_cost(load_profile("local"), 1000, 1000, 1000) == 0.0
