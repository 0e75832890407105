"""Where each provider's simulation profile lives: the registered adapters, plus `ideal`.

A provider's profile (latencies, quotas, retries, prices, each with its
source) is data its adapter plugin registers as ``AdapterInfo.sim_profile``,
so a third-party adapter can be simulated too. `ideal` (no latency, no quota)
is the simulator's own reference broker and lives here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

IDEAL = "ideal"
IDEAL_PROFILE = Path(__file__).parent / "ideal.yaml"


@cache
def profile_paths() -> dict[str, Path]:
    """Every simulated provider's profile file, by name (registered adapters and `ideal`)."""
    from polybus.adapters import available_adapters

    paths = {
        name: found.info.sim_profile
        for name, found in available_adapters().items()
        if found.info.sim_profile is not None
    }
    return {**paths, IDEAL: IDEAL_PROFILE}


def providers() -> tuple[str, ...]:
    """The names a scenario may give as `provider`."""
    return tuple(profile_paths())
