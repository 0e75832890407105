"""Adapters carry the portable bus to a provider; `connect` picks one by configuration.

from polybus.adapters import connect
bus = connect()            # polybus.toml, $POLYBUS_CONFIG or the embedded local bus
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable

import pluggy

from polybus.core.bus import Bus
from polybus.core.config import Config, load_config
from polybus.core.errors import UnknownProviderError
from polybus.core.extras import require
from polybus.core.plugins import RegisteredAdapter, collect_adapters, make_plugin_manager
from polybus.core.tracing import install_if_configured

# Built-in adapters are plugins like any other. A cloud adapter is listed only
# when its module exists; its SDK is imported lazily, when it is chosen.
_BUILT_IN = (
    "polybus.adapters.local.plugin",
    "polybus.adapters.aws.plugin",
    "polybus.adapters.azure.plugin",
    "polybus.adapters.gcp.plugin",
)
DEFAULT_PLUGINS: tuple[str, ...] = tuple(m for m in _BUILT_IN if importlib.util.find_spec(m))


def plugin_manager(
    extra_plugins: Iterable[object] = (), *, load_entrypoints: bool | None = None
) -> pluggy.PluginManager:
    """The plugin manager with the built-in adapters, entry points and `extra_plugins`."""
    pm = make_plugin_manager(DEFAULT_PLUGINS, load_entrypoints=load_entrypoints)
    # Tracing only when OpenTelemetry is installed and configured: its hooks would
    # otherwise cost every publish and delivery a call (see core/tracing).
    install_if_configured(pm)
    for plugin in extra_plugins:
        pm.register(plugin)
    return pm


def available_adapters(pm: pluggy.PluginManager | None = None) -> dict[str, RegisteredAdapter]:
    """Every registered adapter by name, with its origin."""
    return collect_adapters(pm or plugin_manager())


def connect(
    config: Config | str | os.PathLike[str] | None = None,
    *,
    provider: str | None = None,
    pm: pluggy.PluginManager | None = None,
) -> Bus:
    """A Bus on the configured provider (an explicit `provider` wins over the config)."""
    if not isinstance(config, Config):
        config = load_config(config)
    pm = pm or plugin_manager()
    if "journal" in config.providers:  # issue 20: record every publish, for replay everywhere
        require("the event journal", ("sqlalchemy",), "sql")
        from polybus.core.consistency.journal import install_journal

        install_journal(pm, config)
    adapters = collect_adapters(pm)
    name = provider or config.provider
    if name not in adapters:
        raise UnknownProviderError(name, list(adapters))
    info = adapters[name].info
    if info.requires is not None:
        info.requires.check()  # a missing extra: one line with the pip command
    adapter = info.factory(config.settings(name))
    return Bus(adapter, hooks=pm.hook, capabilities=info.capabilities)
