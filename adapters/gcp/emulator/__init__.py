"""polybus's Google Pub/Sub emulator: a gRPC server the real google-cloud-pubsub client talks to.

`start()` serves the google.pubsub.v1 Publisher and Subscriber services on
loopback (server.py: the gRPC surface; backend.py: topics, subscriptions,
publishing; subscription.py: backlog, leases, redelivery, ordering, seek;
filter.py: the subscription filter language). Never imported by the adapter.
"""

from __future__ import annotations

from polybus.adapters.gcp.emulator.server import GcpEmulator, start_server

__all__ = ["GcpEmulator", "start"]


def start(host: str = "127.0.0.1", port: int = 0) -> GcpEmulator:
    """Start serving on `host:port` (0: a free port); the running emulator."""
    return start_server(host, port)
