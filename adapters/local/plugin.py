"""Registers the embedded ``local`` adapter: in memory, or durable in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core import codecs
from core.config import check_keys
from core.contract import Adapter
from core.errors import ConfigError, Problem
from core.hookspecs import AdapterInfo, hookimpl

SETTINGS: dict[str, type | tuple[type, ...]] = {
    "durable": bool,
    "path": str,
    "retention": int,
    "event_format": str,
}


def make_local_adapter(settings: Mapping[str, Any]) -> Adapter:
    """An in-memory bus, or a SQLite-backed one when ``durable = true``.

    ``event_format`` (durable only) is the CloudEvents event format the file
    stores: json (default), avro, avro-compact or protobuf.
    """
    check_keys("local", settings, SETTINGS)
    fmt = settings.get("event_format", "json")
    if fmt not in codecs.FORMATS:
        raise ConfigError(
            "invalid [local] settings",
            [Problem("local.event_format", fmt, f"must be one of {', '.join(codecs.FORMATS)}")],
        )
    if settings.get("durable", False):
        from adapters.local.durable import DurableBus

        return DurableBus(settings.get("path", "polybus.db"), event_format=fmt)
    if fmt != "json":
        raise ConfigError(
            "invalid [local] settings",
            [
                Problem(
                    "local.event_format", fmt, "applies to durable = true (memory keeps objects)"
                )
            ],
        )
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
