"""Finished spans as plain records: JSON lines for `--trace-out`, a text waterfall for `--trace`.

`from_json` reads a line back (the dashboard's ``--traces FILE``), `tree_order`
puts one trace's spans in parent order (each span after its parent, children
by start time), as the text waterfall and the dashboard's waterfall draw them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from polybus.core.errors import Problem, ValidationError

KINDS = ("PRODUCER", "CONSUMER", "CLIENT", "SERVER", "INTERNAL")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, with ids in hex and the service it belongs to."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # PRODUCER, CONSUMER, CLIENT, INTERNAL, SERVER
    service: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Span events: ``{"name", "time_ns", "attributes"}`` (the settlement: ack, nack, dead_letter).
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), sort_keys=True, default=str)


def from_spans(
    spans: Iterable[Any], service_of: Callable[[Any], str | None] | None = None
) -> list[SpanRecord]:
    """Records of OpenTelemetry ReadableSpans, in start order.

    `service_of(span)` names the service (None: the resource's service.name).
    """
    records = []
    for span in spans:
        ctx = span.get_span_context()
        parent = span.parent
        service = service_of(span) if service_of is not None else None
        if service is None:
            service = str(span.resource.attributes.get("service.name", "unknown"))
        records.append(
            SpanRecord(
                trace_id=f"{ctx.trace_id:032x}",
                span_id=f"{ctx.span_id:016x}",
                parent_span_id=None if parent is None else f"{parent.span_id:016x}",
                name=span.name,
                kind=span.kind.name,
                service=service,
                start_ns=span.start_time or 0,
                end_ns=span.end_time or span.start_time or 0,
                attributes=dict(span.attributes or {}),
                events=[
                    {
                        "name": event.name,
                        "time_ns": event.timestamp,
                        "attributes": dict(event.attributes or {}),
                    }
                    for event in span.events
                ],
            )
        )
    return sorted(records, key=lambda r: r.start_ns)


def _hex_id(doc: dict[str, Any], key: str, size: int, problems: list[Problem]) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) != size or not _HEX.issuperset(value):
        problems.append(Problem(key, value, f"must be {size} lowercase hex digits"))
        return ""
    return value


def from_json(doc: object) -> SpanRecord:
    """The record in one parsed JSON line (as `to_json` writes); ValidationError naming each bad field."""
    if not isinstance(doc, dict):
        raise ValidationError("span line", [Problem("line", doc, "must be a JSON object")])
    problems: list[Problem] = []
    trace_id = _hex_id(doc, "trace_id", 32, problems)
    span_id = _hex_id(doc, "span_id", 16, problems)
    parent = doc.get("parent_span_id")
    if parent is not None:
        parent = _hex_id(doc, "parent_span_id", 16, problems) or None
    strings = {}
    for key, default in (("name", None), ("kind", "INTERNAL"), ("service", "unknown")):
        value = doc.get(key, default)
        if not isinstance(value, str) or not value:
            problems.append(Problem(key, value, "must be a non-empty string"))
        strings[key] = str(value)
    if strings["kind"] not in KINDS:
        problems.append(Problem("kind", strings["kind"], f"must be one of {', '.join(KINDS)}"))
    times = {}
    for key in ("start_ns", "end_ns"):
        value = doc.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(Problem(key, value, "must be a whole number of nanoseconds >= 0"))
            value = 0
        times[key] = value
    attributes, events = doc.get("attributes", {}), doc.get("events", [])
    if not isinstance(attributes, dict):
        problems.append(Problem("attributes", attributes, "must be a JSON object"))
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        problems.append(Problem("events", events, "must be a list of JSON objects"))
    if problems:
        raise ValidationError("span line", problems)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=strings["name"],
        kind=strings["kind"],
        service=strings["service"],
        start_ns=times["start_ns"],
        end_ns=max(times["end_ns"], times["start_ns"]),
        attributes=dict(attributes),
        events=list(events),
    )


def tree_order(records: Sequence[SpanRecord]) -> list[tuple[SpanRecord, int]]:
    """One trace's records in parent order with their depth (a span whose parent is absent is a root)."""
    children: dict[str | None, list[SpanRecord]] = {}
    ids = {r.span_id for r in records}
    for record in records:
        parent = record.parent_span_id if record.parent_span_id in ids else None
        children.setdefault(parent, []).append(record)
    ordered: list[tuple[SpanRecord, int]] = []
    seen: set[str] = set()
    roots = sorted(children.get(None, []), key=lambda r: r.start_ns)
    # Spans whose parents form a loop (a malformed file) are not under any root: drawn after.
    rest = sorted(records, key=lambda r: r.start_ns)
    for root in [*roots, *rest]:
        stack = [(root, 0)]
        while stack:
            record, depth = stack.pop()
            if record.span_id in seen:  # drawn already (or a duplicated span id): once
                continue
            seen.add(record.span_id)
            ordered.append((record, depth))
            kids = sorted(children.get(record.span_id, []), key=lambda r: r.start_ns)
            stack.extend((kid, depth + 1) for kid in reversed(kids))
    return ordered


def waterfall(records: Sequence[SpanRecord], width: int = 40) -> list[str]:
    """Lines drawing one trace as a tree with offsets and bars (records of one trace id)."""
    if not records:
        return []
    start = min(r.start_ns for r in records)
    total = max(max(r.end_ns for r in records) - start, 1)
    lines: list[str] = []
    for record, depth in tree_order(records):
        left = int((record.start_ns - start) / total * width)
        size = max(1, int((record.end_ns - record.start_ns) / total * width))
        bar = " " * left + "#" * min(size, width - left) if left < width else " " * width
        label = "  " * depth + record.name
        marks = [str(e.get("name")) for e in record.events if e.get("name") != "exception"]
        if marks:
            label += f" [{', '.join(marks)}]"
        lines.append(
            f"{(record.start_ns - start) / 1e6:8.2f} ms {(record.end_ns - record.start_ns) / 1e6:7.2f} ms "
            f"{record.kind:<8} {record.service:<13} |{bar:<{width}}| {label}"
        )
    return lines
