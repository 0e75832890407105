"""A recording webhook endpoint on loopback for push-delivery tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the webhook got."""

    method: str
    headers: dict[str, str]
    body: Any


@dataclass
class Webhook:
    """Answers the handshakes (unless told not to) and scripted statuses for notifications."""

    echo_validation: bool = True
    allow_origin: str | None = "eventgrid.azure.net"
    status_for: Callable[[int], int] = lambda n: 200
    requests: list[Received] = field(default_factory=list)
    notified: threading.Event = field(default_factory=threading.Event)

    def notifications(self) -> list[Received]:
        """The event deliveries (not the handshakes)."""
        return [r for r in self.requests if r.headers.get("aeg-event-type") == "Notification"]


def serve_webhook(hook: Webhook) -> tuple[ThreadingHTTPServer, str]:
    """Start serving `hook`; returns the server and its URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_OPTIONS(self) -> None:
            hook.requests.append(Received("OPTIONS", dict(self.headers), None))
            self.send_response(200 if hook.allow_origin else 403)
            if hook.allow_origin:
                self.send_header("WebHook-Allowed-Origin", hook.allow_origin)
                self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw) if raw else None
            hook.requests.append(Received("POST", dict(self.headers), body))
            answer = b""
            if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                status = 200
                if hook.echo_validation:
                    code = body[0]["data"]["validationCode"]
                    answer = json.dumps({"validationResponse": code}).encode()
            else:
                status = hook.status_for(len(hook.notifications()))
                hook.notified.set()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"
