"""polybus's Azure Event Grid emulator: plain http the real azure-eventgrid clients talk to.

`start()` serves basic topics (publish, webhook push with the validation
handshakes, retries, dead-lettering) and namespace topics (publish, pull with
locks) on loopback, plus an admin API for creating topics and subscriptions
(server.py: the loop and lifecycle; routes.py: the HTTP surface; namespace.py:
pull delivery; push.py: webhook delivery; filter.py: subscription filters;
sas.py: access keys and SAS tokens). Never imported by the adapter.
"""

from __future__ import annotations

from polybus.adapters.azure.emulator.server import EventGridEmulator, start_emulator

__all__ = ["EventGridEmulator", "start", "start_emulator"]


def start(host: str = "127.0.0.1", port: int = 0) -> EventGridEmulator:
    """Start serving on `host:port` (0: a free port) with a random key; the running emulator."""
    return start_emulator(host, port)
