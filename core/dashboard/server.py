"""`polybus dashboard`: a local HTTP server for the live page and its JSON endpoints.

GET /                 the page (everything inline: it works offline)
GET /api/state        every subscription's backlog (SupportsBacklog) and rates (--metrics)
GET /api/flow         services -> topics -> subscriptions from the spans seen (--traces, recorder)
GET /api/traces       the newest traces; GET /api/trace?id=T  one as waterfall rows
GET /api/dlq?subscription=S          the subscription's dead letters
GET /api/dlq/show?subscription=S&id=I  one dead letter with its whole event
POST /api/dlq/requeue {"subscription", "topic", "ids": [...] | null}
POST /api/dlq/purge   {"subscription", "ids": [...] | null}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

from polybus.core.bus import Bus
from polybus.core.contract import DEFAULT_TOPIC, SupportsBacklog
from polybus.core.dashboard import dlq
from polybus.core.dashboard.flow import flow_graph, latest_traces, trace_rows
from polybus.core.dashboard.metrics import MetricsSource, Rates
from polybus.core.dashboard.page import PAGE
from polybus.core.errors import PolybusError
from polybus.core.page_server import PageHandler, PageServer
from polybus.core.tracing.records import SpanRecord


class SpanSource(Protocol):
    """Where the dashboard's spans come from: a SpanRecorder or a JsonLinesSource."""

    note: str | None

    def records(self) -> list[SpanRecord]:
        """The records seen so far, oldest first."""
        ...


@dataclass
class Dashboard:
    """What the page shows: the bus's backlog per subscription, metrics endpoints' rates."""

    bus: Bus
    topics: dict[str, str] = field(default_factory=dict)  # subscription -> topic for requeue
    sources: list[MetricsSource] = field(default_factory=list)
    spans: list[SpanSource] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def span_records(self) -> list[SpanRecord]:
        """Every span source's records, in start order."""
        records = [r for source in self.spans for r in source.records()]
        return sorted(records, key=lambda r: r.start_ns)

    def known_subscriptions(self) -> dict[str, str]:
        """subscription -> topic: the --subscription options and the bus's own subscriptions."""
        known = {name: sub.spec.topic for name, sub in self.bus.subscriptions.items()}
        known.update(self.topics)
        return known

    def flow(self) -> dict[str, Any]:
        """The flow view: nodes, edges, and each span source's note (a missing file, bad lines)."""
        graph = flow_graph(self.span_records(), self.known_subscriptions())
        graph["tracing"] = bool(self.spans)
        graph["notes"] = [s.note for s in self.spans if s.note]
        return graph

    def traces(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest traces."""
        return latest_traces(self.span_records(), limit)

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace as waterfall rows."""
        return trace_rows(self.span_records(), trace_id)

    def state(self) -> dict[str, Any]:
        """Poll every metrics endpoint and the bus once; the JSON the page renders."""
        for source in self.sources:
            source.poll()
        rates: dict[str, Rates] = {}
        for source in self.sources:
            for row in source.rates():
                rates.setdefault(row.subscription, row)
        names = list(self.topics) + sorted(set(rates) - set(self.topics))
        backlog_supported = isinstance(self.bus.adapter, SupportsBacklog)
        rows = []
        for name in names:
            backlog, error = self._backlog(name) if backlog_supported else (None, None)
            rate = rates.get(name)
            rows.append(
                {
                    "name": name,
                    "topic": self.topics.get(name, DEFAULT_TOPIC),
                    "backlog": backlog,
                    "backlog_error": error,
                    "rates": None if rate is None else rate.to_json(),
                }
            )
        return {
            "provider": self.bus.provider,
            "backlog_supported": backlog_supported,
            "backlog_note": None
            if backlog_supported
            else f"the {self.bus.provider} adapter does not report backlog (no backlog_stats)",
            "sources": [{"url": s.url, "error": s.error} for s in self.sources],
            "subscriptions": rows,
            "at": time.time(),
        }

    def _backlog(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        adapter = self.bus.adapter
        assert isinstance(adapter, SupportsBacklog)
        try:
            with self.lock:
                stats = adapter.backlog_stats(name)
        except PolybusError as exc:
            return None, str(exc)
        return {
            "undelivered": stats.undelivered,
            "in_flight": stats.in_flight,
            "oldest_age": stats.oldest_age,
            "dead_letters": stats.dead_letters,
        }, None

    def dead_letters(self, subscription: str) -> list[dict[str, Any]]:
        """The subscription's dead letters as JSON summaries."""
        with self.lock:
            return [d.to_json() for d in dlq.list_dead_letters(self.bus, subscription)]

    def show(self, subscription: str, event_id: str) -> dict[str, Any] | None:
        """One dead letter with its event, or None."""
        with self.lock:
            found = dlq.find(self.bus, subscription, event_id)
        return None if found is None else found.to_json(full=True)

    def requeue(self, subscription: str, topic: str, ids: Sequence[str] | None) -> dlq.Outcome:
        """Same as `polybus dlq requeue`."""
        with self.lock:
            return dlq.requeue(self.bus, subscription, topic, None if ids is None else set(ids))

    def purge(self, subscription: str, ids: Sequence[str] | None) -> dlq.Outcome:
        """Same as `polybus dlq purge --yes`."""
        with self.lock:
            return dlq.purge(self.bus, subscription, None if ids is None else set(ids))


def parse_subscriptions(values: Iterable[str]) -> dict[str, str]:
    """`NAME` or `NAME=TOPIC` options as subscription -> topic (the topic a requeue goes to)."""
    out: dict[str, str] = {}
    for value in values:
        name, _, topic = value.partition("=")
        out[name.strip()] = topic.strip() or DEFAULT_TOPIC
    return out


class DashboardServer(PageServer):
    """The dashboard on a local port, served from a background thread or the foreground."""

    def __init__(self, dashboard: Dashboard, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_handler(dashboard), host, port)
        self.dashboard = dashboard


def _ids(body: dict[str, Any]) -> list[str] | None:
    ids = body.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("ids: a list of event ids, or null for all")
    return ids


def _handler(board: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(PageHandler):
        def _json(self, status: int, doc: object) -> None:
            self._send(status, json.dumps(doc, default=str).encode(), "application/json")

        def do_GET(self) -> None:
            """The page and the read-only endpoints."""
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/":
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                elif url.path == "/api/state":
                    self._json(200, board.state())
                elif url.path == "/api/flow":
                    self._json(200, board.flow())
                elif url.path == "/api/traces":
                    self._json(200, board.traces())
                elif url.path == "/api/trace" and "id" in query:
                    self._json(200, board.trace(query["id"]))
                elif url.path == "/api/dlq" and "subscription" in query:
                    self._json(200, board.dead_letters(query["subscription"]))
                elif url.path == "/api/dlq/show" and {"subscription", "id"} <= set(query):
                    found = board.show(query["subscription"], query["id"])
                    self._json(404 if found is None else 200, found or {"error": "not found"})
                else:
                    self._json(404, {"error": f"no such page: {url.path}"})
            except PolybusError as exc:
                self._json(502, {"error": str(exc)})

        def do_POST(self) -> None:
            """Requeue and purge: the same code as the CLI."""
            url = urlparse(self.path)
            try:
                body = self._read_json()
                if not isinstance(body, dict) or not isinstance(body.get("subscription"), str):
                    raise ValueError("expected a JSON object with a subscription")
                sub = body["subscription"]
                if url.path == "/api/dlq/requeue":
                    topic = body.get("topic") or board.topics.get(sub, DEFAULT_TOPIC)
                    self._json(200, board.requeue(sub, str(topic), _ids(body)).to_json())
                elif url.path == "/api/dlq/purge":
                    self._json(200, board.purge(sub, _ids(body)).to_json())
                else:
                    self._json(404, {"error": f"no such action: {url.path}"})
            except ValueError as exc:  # bad JSON too
                self._json(400, {"error": str(exc)})
            except PolybusError as exc:
                self._json(502, {"error": str(exc)})

    return Handler
