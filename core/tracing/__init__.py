"""Distributed tracing with OpenTelemetry (the `otel` extra; a no-op without it or unconfigured).

`Tracing` is the plugin polybus.adapters.plugin_manager registers when a global
TracerProvider is configured (`install_if_configured`), or `install(pm)` adds;
`carriers` converts trace context to and from providers' native carriers;
`records` turns finished spans into JSON lines and a waterfall.
"""

from __future__ import annotations

from polybus.core.tracing.plugin import (
    PLUGIN_NAME,
    SYSTEMS,
    Tracing,
    install,
    install_if_configured,
    messaging_system,
)

__all__ = [
    "PLUGIN_NAME",
    "SYSTEMS",
    "Tracing",
    "install",
    "install_if_configured",
    "messaging_system",
]
