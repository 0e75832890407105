"""Registers the embedded ``local`` adapter: in memory, or durable in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.config import check_keys
from core.contract import Adapter
from core.hookspecs import AdapterInfo, hookimpl

SETTINGS: dict[str, type | tuple[type, ...]] = {"durable": bool, "path": str, "retention": int}


def make_local_adapter(settings: Mapping[str, Any]) -> Adapter:
    """An in-memory bus, or a SQLite-backed one when ``durable = true``."""
    check_keys("local", settings, SETTINGS)
    if settings.get("durable", False):
        from adapters.local.durable import DurableBus

        return DurableBus(settings.get("path", "polybus.db"))
    from adapters.local.memory import DEFAULT_RETENTION, MemoryBus

    return MemoryBus(retention=settings.get("retention", DEFAULT_RETENTION))


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """The embedded bus, the default when nothing is configured."""
    register(
        AdapterInfo(
            name="local",
            factory=make_local_adapter,
            description="embedded in-process bus (memory, or durable SQLite with durable = true)",
            size_rule="none",
        )
    )
