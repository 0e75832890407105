"""Suite-wide setup: never autoload installed plugins; load each provider's fixtures."""

from __future__ import annotations

import importlib.util
import os

os.environ["POLYBUS_DISABLE_PLUGIN_AUTOLOAD"] = "1"

_FIXTURE_MODULES = (
    "tests.fixtures.local",
    "tests.fixtures.aws",
    "tests.fixtures.azure",
    "tests.fixtures.gcp",
    "tests.fixtures.thirdparty",
    "tests.fixtures.postgres",
)
pytest_plugins = [m for m in _FIXTURE_MODULES if importlib.util.find_spec(m)] + [
    "polybus.pytest_plugin"  # the fixtures polybus ships to its users, used by our own tests too
]
