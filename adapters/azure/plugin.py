"""Registers the ``azure`` adapter (Event Grid; the SDK is the polybus[azure] extra)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polybus.adapters.azure.settings import SECRET_KEYS, parse_settings
from polybus.core.contract import Adapter
from polybus.core.hookspecs import AdapterInfo, hookimpl


def make_adapter(settings: Mapping[str, Any]) -> Adapter:
    """An Event Grid adapter from the ``[azure]`` section (validated before any network call)."""
    parsed = parse_settings(settings)
    from polybus.adapters.azure.adapter import AzureAdapter  # the SDK is optional: import it lazily

    return AzureAdapter(parsed)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Azure Event Grid: namespace pull or basic-topic webhook push (or the polybus emulator)."""
    register(
        AdapterInfo(
            name="azure",
            factory=make_adapter,
            description="Azure Event Grid: namespace pull or webhook push (azure-eventgrid SDK)",
            secret_keys=SECRET_KEYS,
        )
    )
