"""Build the plugin manager and collect the adapters plugins register.

Default plugins are given by the caller (adapters.DEFAULT_PLUGINS) as module
names or objects; third-party plugins come from the ``polybus`` entry-point
group unless ``POLYBUS_DISABLE_PLUGIN_AUTOLOAD`` is set (the test suite sets
it, so tests never load whatever happens to be installed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from polybus.core import hookspecs
from polybus.core.errors import ConfigError, Problem
from polybus.core.hookspecs import AdapterInfo

ENV_NO_AUTOLOAD = "POLYBUS_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class RegisteredAdapter:
    """An adapter and where it came from (the plugin, and its distribution if installed)."""

    info: AdapterInfo
    origin: str


def make_plugin_manager(
    default_plugins: Iterable[str | object] = (),
    *,
    load_entrypoints: bool | None = None,
) -> pluggy.PluginManager:
    """A plugin manager with our hookspecs, the default plugins and (optionally) entry points."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in default_plugins:
        if isinstance(plugin, str):
            pm.register(importlib.import_module(plugin), name=plugin)
        else:
            pm.register(plugin)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get(ENV_NO_AUTOLOAD)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()
    return pm


def collect_adapters(pm: pluggy.PluginManager) -> dict[str, RegisteredAdapter]:
    """Every adapter registered through `polybus_register_adapters`, by name.

    Each hook implementation is called on its own so the origin of every
    adapter is known; two plugins registering one name is a ConfigError.
    """
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    found: dict[str, RegisteredAdapter] = {}
    for impl in pm.hook.polybus_register_adapters.get_hookimpls():
        dist = dists.get(id(impl.plugin))
        origin = (
            f"{dist.project_name} {dist.version} (entry point {impl.plugin_name})"
            if dist is not None
            else f"built-in ({impl.plugin_name})"
        )

        def register(info: AdapterInfo, origin: str = origin) -> None:
            if info.name in found:
                raise ConfigError(
                    "adapter registered twice",
                    [
                        Problem(
                            "adapter", info.name, f"already registered by {found[info.name].origin}"
                        )
                    ],
                )
            check_registration(info, origin)
            found[info.name] = RegisteredAdapter(info, origin)

        impl.function(register=register)
    return found


def check_registration(info: AdapterInfo, origin: str) -> None:
    """Refuse a registration that contradicts itself (its size limit against its capabilities)."""
    declared = info.capabilities.max_event_size
    measured = None if info.sizing is None else info.sizing.limit.limit
    if declared != measured:
        raise ConfigError(
            f"inconsistent adapter registration from {origin}",
            [
                Problem(
                    f"{info.name}.capabilities.max_event_size",
                    declared,
                    f"must equal the sizing limit ({measured})",
                )
            ],
        )
