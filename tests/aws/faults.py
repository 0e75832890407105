"""A loopback HTTP proxy in front of moto that records PutEvents calls and injects entry faults.

moto never throttles and never fails an entry for internal reasons, and it
does not enforce the 256 KB request limit; AWS does all three. Pointing the
adapter's endpoint_url at this proxy keeps real boto3 on real sockets while a
test scripts which entries AWS would have refused: a faulted entry is not
forwarded, and the proxy merges its ErrorCode into moto's answer in order.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# (call number starting at 1, the request's entries) -> {entry index: (ErrorCode, ErrorMessage)}
FaultPlan = Callable[[int, list[dict[str, Any]]], dict[int, tuple[str, str]]]


@dataclass
class PutEventsCall:
    """One PutEvents request as the proxy saw it."""

    entries: list[dict[str, Any]]
    entry_sizes: list[int]
    failed_codes: list[str] = field(default_factory=list)


class FaultProxy:
    """Forwards to moto; records PutEvents; applies `plan` to each PutEvents request."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.plan: FaultPlan = plan or (lambda n, entries: {})
        self.calls: list[PutEventsCall] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith(".PutEvents"):
            status, out_headers, payload = self._put_events(request.path, headers, body)
        else:
            status, out_headers, payload = self._forward(
                request.command, request.path, headers, body
            )
        request.send_response(status)
        for name, value in out_headers:
            if name.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "date",
                "server",
            ):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _put_events(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        entries: list[dict[str, Any]] = json.loads(body)["Entries"]
        with self._lock:
            call = PutEventsCall(entries, [_entry_size(e) for e in entries])
            self.calls.append(call)
            number = len(self.calls)
        faults = self.plan(number, entries)
        forward = [e for i, e in enumerate(entries) if i not in faults]
        results: list[dict[str, Any]] = []
        out_headers: list[tuple[str, str]] = [("Content-Type", "application/x-amz-json-1.1")]
        if forward:
            status, out_headers, payload = self._forward(
                "POST", path, headers, json.dumps({"Entries": forward}).encode()
            )
            if status != 200:
                return status, out_headers, payload
            results = list(json.loads(payload)["Entries"])
        merged: list[dict[str, Any]] = []
        for index in range(len(entries)):
            if index in faults:
                code, message = faults[index]
                merged.append({"ErrorCode": code, "ErrorMessage": message})
                call.failed_codes.append(code)
            else:
                merged.append(results.pop(0))
        failed = sum(1 for r in merged if "ErrorCode" in r)
        answer = json.dumps({"FailedEntryCount": failed, "Entries": merged}).encode()
        return 200, out_headers, answer


def _entry_size(entry: dict[str, Any]) -> int:
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))
