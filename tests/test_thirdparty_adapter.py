"""A third-party adapter installed through the `polybus` entry-point group takes part everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from polybus.core.plugins import RegisteredAdapter
from tests.fixtures.thirdparty import THIRDPARTY_DIR

REPO = Path(__file__).resolve().parents[1]


def _polybus(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with the toy's distribution on the path and entry-point loading on."""
    env = {k: v for k, v in os.environ.items() if k != "POLYBUS_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(THIRDPARTY_DIR), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "polybus", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_entry_point_registration_names_its_distribution(
    toy_registration: RegisteredAdapter,
) -> None:
    """Loaded by entry point, the toy's origin is its distribution, version and entry point."""
    assert toy_registration.origin == "polybus-toy 0.1.0 (entry point toy)"
    assert toy_registration.info.capabilities.ordering is False


def test_polybus_adapters_lists_the_toy_with_its_capabilities() -> None:
    """`polybus adapters --json` shows the toy beside the built-ins, with what it declares."""
    result = _polybus("adapters", "--json")
    assert result.returncode == 0, result.stderr
    found = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert {"local", "aws", "azure", "gcp", "toy"} <= set(found)
    toy = found["toy"]
    assert toy["origin"] == "polybus-toy 0.1.0 (entry point toy)"
    assert toy["capabilities"]["delivery_attempts"] == [1, 10]
    assert toy["capabilities"]["max_event_size"] == 65536
    assert toy["native_filter"] == "toy filter (client-side only)"


def test_filter_explain_uses_the_toys_compiler() -> None:
    """`polybus filter explain --provider toy` runs the toy's compiler: all client-side."""
    result = _polybus("filter", "explain", "--provider", "toy", "--json", "type = 'com.x'")
    assert result.returncode == 0, result.stderr
    explained = json.loads(result.stdout)
    assert explained["native"] is None
    assert explained["residual"] == {"sql": "type = 'com.x'"}
    assert explained["verdict"] == "client-side only"


def test_unknown_provider_lists_the_registered_ones() -> None:
    """A provider nobody registered is one error listing those that are, never a traceback."""
    result = _polybus("filter", "explain", "--provider", "toyy", "type = 'a'")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unknown provider 'toyy'" in result.stderr and "toy" in result.stderr
