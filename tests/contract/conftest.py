"""The contract suite's parametrised fixtures: every adapter, and what it declares.

Each fixtures module (tests/fixtures/<name>.py) supplies a
``<id>_adapter_factory`` fixture for each id in its ``ADAPTER_IDS`` tuple
(default: the module name). The adapter's registration (capabilities,
sizing, filters) comes from the plugin registry under the id's first part
(``local-durable`` -> ``local``), or from an ``<id>_adapter_info`` fixture
for adapters that are not built in. Tests read the declared capabilities:
what an adapter declares is tested, what it does not declare is tested to be
refused. An adapter is done when this suite passes unchanged against it.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable

import pytest

from polybus.adapters import available_adapters, plugin_manager
from polybus.core.capabilities import Capabilities
from polybus.core.contract import Adapter
from polybus.core.hookspecs import AdapterInfo
from tests import conftest as suite

ADAPTER_IDS = ["local", "local-durable", "local-durable-avro"] + [
    adapter_id
    for name in suite.pytest_plugins
    if name.startswith("tests.fixtures.") and not name.endswith(".local")
    for adapter_id in getattr(
        importlib.import_module(name), "ADAPTER_IDS", (name.rsplit(".", 1)[1],)
    )
]


@pytest.fixture(params=ADAPTER_IDS, ids=ADAPTER_IDS)
def adapter_id(request: pytest.FixtureRequest) -> str:
    """Which adapter this run of a contract test is about."""
    return str(request.param)


@pytest.fixture
def make_adapter(adapter_id: str, request: pytest.FixtureRequest) -> Callable[[], Adapter]:
    """A factory of fresh adapters of one provider."""
    factory: Callable[[], Adapter] = request.getfixturevalue(
        f"{adapter_id.replace('-', '_')}_adapter_factory"
    )
    return factory


@pytest.fixture
def adapter_info(adapter_id: str, request: pytest.FixtureRequest) -> AdapterInfo:
    """The adapter's registration: from its own fixture, else the built-in registry."""
    try:
        info: AdapterInfo = request.getfixturevalue(f"{adapter_id.replace('-', '_')}_adapter_info")
        return info
    except pytest.FixtureLookupError:
        pass
    registry = available_adapters(plugin_manager(load_entrypoints=False))
    return registry[adapter_id.split("-")[0]].info


@pytest.fixture
def capabilities(adapter_info: AdapterInfo) -> Capabilities:
    """What the adapter declares it supports."""
    return adapter_info.capabilities


@pytest.fixture
def adapter(make_adapter: Callable[[], Adapter]) -> Adapter:
    """One fresh adapter."""
    return make_adapter()


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique resource names so tests never see each other's events."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"

