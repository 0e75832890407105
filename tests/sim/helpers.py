"""Scenario builders shared by the simulation tests."""

from __future__ import annotations

from typing import Any

from polybus.sim.loader import parse_scenario
from polybus.sim.topology import Scenario


def station(
    rate: float,
    service: object,
    workers: int = 1,
    duration: float = 20000.0,
    warmup: float = 1000.0,
    **extra: Any,
) -> Scenario:
    """A single station fed by a Poisson stream: M/G/c."""
    raw = {
        "name": "station",
        "duration": duration,
        "warmup": warmup,
        "sample_interval": 100.0,
        "workload": {"q": {"rate": rate}},
        "topologies": {
            "one": {
                "entry": {"q": "s"},
                "services": {"s": {"workers": workers, "service_time": service}},
            }
        },
        **extra,
    }
    return parse_scenario(raw)


def exp(mean: float) -> dict[str, Any]:
    """An exponential service-time spec."""
    return {"dist": "exponential", "mean": mean}
