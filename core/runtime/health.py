"""A tiny HTTP server for probes and metrics: /healthz, /readyz, /metrics.

It runs on the service's own event loop (no thread, no dependency):
`/healthz` answers 200 while the loop is alive (a blocked loop cannot
answer), `/readyz` 200 once the app is connected and provisioned and 503
before start and during shutdown, `/metrics` the Prometheus text format.
Anything else is 404; a malformed request gets 400 and the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("polybus.health")
MAX_REQUEST_LINE = 8192


@dataclass(frozen=True)
class Probes:
    """What the server asks the service."""

    ready: Callable[[], bool]
    metrics: Callable[[], str]
    detail: Callable[[], str] = lambda: ""  # firing alarms, one per line (in the /readyz body)


class HealthServer:
    """Serves the probes on host:port until `stop()`."""

    def __init__(self, probes: Probes, host: str = "0.0.0.0", port: int = 8000) -> None:
        self.probes = probes
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (port 0 picks a free port; `port` then holds it)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10.0)
            while (await asyncio.wait_for(reader.readline(), 10.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            status, body, kind = self._answer(line)
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            status, body, kind = 400, "bad request\n", "text/plain"
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}; charset=utf-8\r\n"
            f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + body.encode())
            await writer.drain()
        writer.close()

    def _answer(self, line: bytes) -> tuple[int, str, str]:
        parts = line.decode("latin-1").split()
        if len(line) > MAX_REQUEST_LINE or len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "bad request\n", "text/plain"
        method, path = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed\n", "text/plain"
        if path == "/healthz":
            return 200, "ok\n", "text/plain"
        if path == "/readyz":
            detail = self.probes.detail()  # firing alarms do not fail readiness; they are listed
            if self.probes.ready():
                return 200, "ready\n" + detail, "text/plain"
            return 503, "not ready\n" + detail, "text/plain"
        if path == "/metrics":
            return 200, self.probes.metrics(), "text/plain; version=0.0.4"
        return 404, "not found\n", "text/plain"


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
