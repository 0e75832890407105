"""The dashboard's flow view and trace waterfall, computed from span records.

`flow_graph`: publisher service -> topic -> subscription (with the service
owning it), from the spans seen (PRODUCER spans name their topic, CONSUMER
spans their subscription and, through their parent, the topic) and the
subscriptions the bus knows. `latest_traces` lists the newest traces;
`trace_rows` lays one out as a waterfall in parent order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from polybus.core.tracing.records import SpanRecord, tree_order

TOPIC = "messaging.destination.name"
SUBSCRIPTION = "messaging.destination.subscription.name"
FAILED = ("retried", "dead-lettered")


def flow_graph(records: Iterable[SpanRecord], known: Mapping[str, str]) -> dict[str, Any]:
    """Nodes (services, topics, subscriptions) and counted edges; `known` maps subscription -> topic."""
    spans = list(records)
    by_id = {r.span_id: r for r in spans}
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}

    def node(kind: str, name: str, service: str | None = None) -> str:
        key = f"{kind}:{name}"
        found = nodes.setdefault(key, {"id": key, "kind": kind, "name": name, "service": None})
        if service is not None:
            found["service"] = service
        return key

    def edge(source: str, target: str, count: int = 1, errors: int = 0) -> None:
        found = edges.setdefault(
            (source, target), {"from": source, "to": target, "count": 0, "errors": 0}
        )
        found["count"] += count
        found["errors"] += errors

    for subscription, topic in known.items():
        edge(node("topic", topic), node("subscription", subscription), count=0)
    for record in spans:
        attrs = record.attributes
        if record.kind == "PRODUCER" and isinstance(attrs.get(TOPIC), str):
            edge(node("service", record.service), node("topic", attrs[TOPIC]))
        elif record.kind == "CONSUMER" and isinstance(attrs.get(SUBSCRIPTION), str):
            subscription = attrs[SUBSCRIPTION]
            parent = by_id.get(record.parent_span_id or "")
            seen = parent.attributes.get(TOPIC) if parent is not None else None
            source = seen if isinstance(seen, str) else known.get(subscription, "?")
            target = node("subscription", subscription, record.service)
            failed = int(attrs.get("polybus.outcome") in FAILED)
            edge(node("topic", source), target, errors=failed)
    order = {"service": 0, "topic": 1, "subscription": 2}
    return {
        "nodes": sorted(nodes.values(), key=lambda n: (order[n["kind"]], n["name"])),
        "edges": sorted(edges.values(), key=lambda e: (e["from"], e["to"])),
    }


def latest_traces(records: Iterable[SpanRecord], limit: int = 10) -> list[dict[str, Any]]:
    """The newest `limit` traces (by their last span's end): id, root span, size, duration."""
    traces: dict[str, list[SpanRecord]] = {}
    for record in records:
        traces.setdefault(record.trace_id, []).append(record)
    rows: list[dict[str, Any]] = []
    for trace_id, spans in traces.items():
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.parent_span_id not in ids]
        root = min(roots or spans, key=lambda s: s.start_ns)
        start, end = min(s.start_ns for s in spans), max(s.end_ns for s in spans)
        rows.append(
            {
                "trace_id": trace_id,
                "root": root.name,
                "service": root.service,
                "spans": len(spans),
                "services": sorted({s.service for s in spans}),
                "start_ns": start,
                "end_ns": end,
                "duration_ms": (end - start) / 1e6,
            }
        )
    rows.sort(key=lambda r: r["end_ns"], reverse=True)
    return rows[:limit]


def trace_rows(records: Sequence[SpanRecord], trace_id: str) -> dict[str, Any]:
    """One trace as waterfall rows in parent order: offsets and durations in ms from its start."""
    spans = [r for r in records if r.trace_id == trace_id]
    if not spans:
        return {"trace_id": trace_id, "total_ms": 0.0, "rows": []}
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    rows = []
    for record, depth in tree_order(spans):
        rows.append(
            {
                "span_id": record.span_id,
                "parent_span_id": record.parent_span_id,
                "name": record.name,
                "kind": record.kind,
                "service": record.service,
                "depth": depth,
                "offset_ms": (record.start_ns - start) / 1e6,
                "duration_ms": (record.end_ns - record.start_ns) / 1e6,
                "error": record.attributes.get("polybus.outcome") in FAILED,
                "events": [
                    {
                        "name": str(e.get("name")),
                        "offset_ms": (int(e.get("time_ns") or record.end_ns) - start) / 1e6,
                    }
                    for e in record.events
                ],
            }
        )
    return {"trace_id": trace_id, "total_ms": total / 1e6, "rows": rows}
