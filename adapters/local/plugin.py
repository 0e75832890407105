"""Registers the embedded ``local`` adapter: in memory, or durable in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polybus.adapters.local.durable import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_RETENTION_SECONDS,
    DurableBus,
)
from polybus.adapters.local.memory import (
    DEFAULT_MAX_PENDING,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_RETENTION,
    MemoryBus,
)
from polybus.core import codecs
from polybus.core.capabilities import Capabilities
from polybus.core.config import SettingsSchema, check_keys
from polybus.core.contract import Adapter, SubscriptionSpec
from polybus.core.errors import ConfigError, Problem
from polybus.core.filters.dialects import Filter, to_json
from polybus.core.filters.native import Compiled
from polybus.core.hookspecs import AdapterInfo, FilterSupport, hookimpl
from polybus.core.provisioning_plan import (
    ListedSubscription,
    ProvisioningPlan,
    ProvisioningSupport,
)

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
    "event_format": str,
    "retention": int,
    "max_pending": int,
    "publish_timeout": (int, float),
    "retention_seconds": (int, float),
    "busy_timeout": (int, float),
}
# Settings that mean something in one mode only; setting one in the other mode is an error.
MEMORY_ONLY = ("retention", "max_pending", "publish_timeout")
DURABLE_ONLY = ("event_format", "retention_seconds", "busy_timeout")


@dataclass(frozen=True)
class LocalConfig:
    """The [local] table, checked: which mode, and that mode's bounds."""

    durable: bool = False
    path: str = "polybus.db"
    event_format: str = "json"
    retention: int = DEFAULT_RETENTION
    max_pending: int = DEFAULT_MAX_PENDING
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT


def parse_config(settings: Mapping[str, Any]) -> LocalConfig:
    """Check the [local] table: known keys and types, values in range, settings of the mode chosen.

    Every problem is reported at once, in one ConfigError naming each field.
    """
    check_keys("local", settings, SETTINGS)
    cfg = LocalConfig(**settings)
    problems = []
    if cfg.event_format not in codecs.FORMATS:
        rule = f"must be one of {', '.join(codecs.FORMATS)}"
        problems.append(Problem("local.event_format", cfg.event_format, rule))
    for key, low in (
        ("retention", 1),
        ("max_pending", 1),
        ("publish_timeout", 0),
        ("retention_seconds", 0),
        ("busy_timeout", 0),
    ):
        if getattr(cfg, key) < low:
            problems.append(Problem(f"local.{key}", getattr(cfg, key), f"must be >= {low}"))
    if cfg.durable:
        for key in MEMORY_ONLY:
            if key in settings:
                rule = "applies to the memory bus (durable = false)"
                if key == "retention":
                    rule += "; the durable bus keeps acked events for retention_seconds"
                problems.append(Problem(f"local.{key}", settings[key], rule))
    else:
        for key in DURABLE_ONLY:
            if key in settings:
                rule = "applies to durable = true"
                if key == "event_format":
                    rule += " (memory keeps objects)"
                problems.append(Problem(f"local.{key}", settings[key], rule))
    if problems:
        raise ConfigError("invalid [local] settings", problems)
    return cfg


def make_local_adapter(settings: Mapping[str, Any]) -> Adapter:
    """An in-memory bus, or a SQLite-backed one when ``durable = true`` (see docs/local.md)."""
    cfg = parse_config(settings)
    if cfg.durable:
        return DurableBus(
            cfg.path,
            event_format=cfg.event_format,
            retention_seconds=float(cfg.retention_seconds),
            busy_timeout=float(cfg.busy_timeout),
        )
    return MemoryBus(
        retention=cfg.retention,
        max_pending=cfg.max_pending,
        publish_timeout=float(cfg.publish_timeout),
    )


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """Nothing to create: the local bus keeps subscriptions in memory or in its SQLite file."""
    cfg = parse_config(section)
    where = f"the SQLite file {cfg.path}" if cfg.durable else "memory"
    return ProvisioningPlan(
        "local",
        (),
        notes=(f"the local bus creates subscriptions itself, in {where}, when the app starts",),
    )


def list_subscriptions(adapter: Adapter) -> Sequence[ListedSubscription]:
    """The durable bus's subscriptions (in its file); a fresh memory bus has none."""
    if isinstance(adapter, DurableBus):
        return [ListedSubscription(name, "") for name in adapter.subscriptions()]
    return []


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
            settings=SettingsSchema(parse_config),
            provisioning=ProvisioningSupport(plan, list_subscriptions),
        )
    )
