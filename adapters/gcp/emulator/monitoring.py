"""The slice of Cloud Monitoring the emulator serves: Pub/Sub's subscription gauges.

``GET /v3/projects/{project}/timeSeries?filter=...&interval.endTime=...``
answers Monitoring API v3's ListTimeSeriesResponse for two metric types,
computed from the emulator's live backlog when asked (no sampling delay):

- ``pubsub.googleapis.com/subscription/num_undelivered_messages``: every
  unacknowledged message, leased ones included (as Pub/Sub counts it);
- ``pubsub.googleapis.com/subscription/oldest_unacked_message_age``: whole
  seconds since the oldest unacknowledged message was published (0 when none).

The filter accepts ``key = "value"`` clauses joined by ``AND`` on
``metric.type`` (required), ``resource.type`` (``pubsub_subscription``) and
``resource.labels.subscription_id`` / ``project_id``; without a
subscription id every subscription of the project gets a series. Each
series has one point, its value an ``int64Value`` string. Anything else is a
400 in Google's error JSON (``{"error": {"code", "message", "status"}}``).
No authentication: the adapter sends anonymous credentials to plain http.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from polybus.adapters.gcp.emulator.backend import Backend
from polybus.adapters.gcp.emulator.errors import RpcError

UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
METRICS = (UNDELIVERED, OLDEST_AGE)
FILTER_KEYS = (
    "metric.type",
    "resource.type",
    "resource.labels.subscription_id",
    "resource.labels.project_id",
)
_PATH = re.compile(r"/v3/projects/([^/]+)/timeSeries")
_CLAUSE = re.compile(r'\s*([\w.]+)\s*=\s*"([^"]*)"\s*')


class MonitoringError(Exception):
    """A request the Monitoring emulator refuses: HTTP status, gRPC status name, message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def to_json(self) -> dict[str, Any]:
        """Google's error body."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def parse_filter(text: str) -> dict[str, str]:
    """The filter's ``key = "value"`` clauses; MonitoringError naming what is wrong otherwise."""
    clauses: dict[str, str] = {}
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise _invalid(f'filter clause {part!r}: expected key = "value" (joined by AND)')
        key, value = match.groups()
        if key not in FILTER_KEYS:
            raise _invalid(f"filter key {key!r}: the emulator knows {', '.join(FILTER_KEYS)}")
        clauses[key] = value
    metric = clauses.get("metric.type")
    if metric is None:
        raise _invalid("filter: a metric.type clause is required")
    if metric not in METRICS:
        raise _invalid(f"filter metric.type {metric!r}: the emulator serves {', '.join(METRICS)}")
    resource = clauses.get("resource.type", "pubsub_subscription")
    if resource != "pubsub_subscription":
        raise _invalid(f"filter resource.type {resource!r}: only pubsub_subscription is served")
    return clauses


def list_time_series(
    backend: Backend, project: str, query: dict[str, list[str]], now: float | None = None
) -> dict[str, Any]:
    """A ListTimeSeriesResponse for `query` (the URL's parameters) against `backend`."""
    text = (query.get("filter") or [""])[0]
    if not text:
        raise _invalid("filter: required")
    end = (query.get("interval.endTime") or [""])[0]
    if not end:
        raise _invalid("interval.endTime: required")
    try:
        datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"interval.endTime {end!r}: must be an RFC 3339 timestamp") from None
    clauses = parse_filter(text)
    if clauses.get("resource.labels.project_id", project) != project:
        return {"unit": "1"}
    metric = clauses["metric.type"]
    wanted = clauses.get("resource.labels.subscription_id")
    names = (
        [f"projects/{project}/subscriptions/{wanted}"]
        if wanted is not None
        else backend.list_subscriptions(f"projects/{project}")
    )
    moment = time.time() if now is None else now
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    series = []
    for name in names:
        try:
            sub = backend.subscription(name)
        except RpcError:
            continue  # Monitoring has no series for a subscription that does not exist
        with sub.cond:
            figures = sub.backlog()
        if metric == UNDELIVERED:
            value = int(figures["undelivered"] or 0) + int(figures["in_flight"] or 0)
        else:
            oldest = figures["oldest_publish"]
            value = 0 if oldest is None else max(0, int(moment - float(oldest)))
        series.append(
            {
                "metric": {"type": metric},
                "resource": {
                    "type": "pubsub_subscription",
                    "labels": {"project_id": project, "subscription_id": name.rsplit("/", 1)[-1]},
                },
                "metricKind": "GAUGE",
                "valueType": "INT64",
                "points": [
                    {
                        "interval": {"startTime": stamp, "endTime": stamp},
                        "value": {"int64Value": str(value)},
                    }
                ],
            }
        )
    answer: dict[str, Any] = {"unit": "1" if metric == UNDELIVERED else "s"}
    if series:
        answer["timeSeries"] = series
    return answer


class MonitoringServer:
    """The HTTP server answering timeSeries.list from a backend, on a daemon thread."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"backend": backend})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="monitoring-emulator", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://host:port``: what the gcp adapter's monitoring_endpoint takes."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


class _Handler(BaseHTTPRequestHandler):
    backend: Backend

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        match = _PATH.fullmatch(parts.path)
        try:
            if match is None:
                raise MonitoringError(404, "NOT_FOUND", f"no route {parts.path!r}")
            body = list_time_series(self.backend, match.group(1), parse_qs(parts.query))
            self._send(200, body)
        except MonitoringError as exc:
            self._send(exc.code, exc.to_json())

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator logs nothing per request."""


def _invalid(message: str) -> MonitoringError:
    return MonitoringError(400, "INVALID_ARGUMENT", message)
