"""The contract suite's one parametrised fixture: every registered adapter, readable ids.

Each provider's fixtures module (tests/fixtures/<provider>.py) supplies a
``<id>_adapter_factory`` fixture for each id in its ``ADAPTER_IDS`` tuple
(default: the module name); an adapter is done when this suite passes
unchanged against it.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable

import pytest

from polybus.core.contract import Adapter
from tests import conftest as suite

ADAPTER_IDS = ["local", "local-durable", "local-durable-avro"] + [
    adapter_id
    for name in suite.pytest_plugins
    if not name.endswith(".local")
    for adapter_id in getattr(
        importlib.import_module(name), "ADAPTER_IDS", (name.rsplit(".", 1)[1],)
    )
]


@pytest.fixture(params=ADAPTER_IDS, ids=ADAPTER_IDS)
def make_adapter(request: pytest.FixtureRequest) -> Callable[[], Adapter]:
    """A factory of fresh adapters of one provider."""
    factory: Callable[[], Adapter] = request.getfixturevalue(
        f"{request.param.replace('-', '_')}_adapter_factory"
    )
    return factory


@pytest.fixture
def adapter(make_adapter: Callable[[], Adapter]) -> Adapter:
    """One fresh adapter."""
    return make_adapter()


@pytest.fixture
def names() -> Callable[[str], str]:
    """Unique resource names so tests never see each other's events."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"
