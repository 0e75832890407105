"""A local page served from a background thread or the foreground (the lab, the dashboard)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class PageHandler(BaseHTTPRequestHandler):
    """A quiet handler with the two things every local page needs: send bytes, read JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pages poll, and the terminal shows the address, not every request."""

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _read_json(self) -> Any:
        """The request body as JSON (an empty body is ``{}``); ValueError when malformed."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")


class PageServer:
    """Serves `handler` on host:port (port 0 picks a free one) until `close()`."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (the real port when 0 was asked for)."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def serve_forever(self) -> None:
        """Serve until `close()` or Ctrl-C."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> Self:
        """Serve from a background thread (for tests and notebooks); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
