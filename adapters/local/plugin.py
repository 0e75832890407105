"""Registers the embedded ``local`` adapter: in memory, or durable in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polybus.core import codecs
from polybus.core.capabilities import Capabilities
from polybus.core.config import check_keys
from polybus.core.contract import Adapter
from polybus.core.errors import ConfigError, Problem
from polybus.core.filters.dialects import Filter, to_json
from polybus.core.filters.native import Compiled
from polybus.core.hookspecs import AdapterInfo, FilterSupport, hookimpl

# The embedded bus implements every policy itself: ordering per partition key,
# replay from its retained log, dead-letter topics, any filter dialect, no size limit.
CAPABILITIES = Capabilities(
    ordering=True,
    replay=True,
    native_dead_letter=True,
    native_filters=True,
    delivery_attempts=(1, 100),
    delivery_modes=("pull",),
)


def compile_filter(flt: Filter | None) -> Compiled[Any]:
    """The local adapter evaluates the whole portable filter itself: nothing is residual."""
    return Compiled(None if flt is None else to_json(flt), None)


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
        from polybus.adapters.local.durable import DurableBus

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
    from polybus.adapters.local.memory import DEFAULT_RETENTION, MemoryBus

    return MemoryBus(retention=settings.get("retention", DEFAULT_RETENTION))


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """The embedded bus, the default when nothing is configured."""
    register(
        AdapterInfo(
            name="local",
            factory=make_local_adapter,
            description="embedded in-process bus (memory, or durable SQLite with durable = true)",
            capabilities=CAPABILITIES,
            filters=FilterSupport(compile_filter, "local adapter (evaluates every dialect itself)"),
            sim_profile=Path(__file__).parent / "sim_profile.yaml",
        )
    )
