"""Finished spans as plain records: JSON lines for `--trace-out`, a text waterfall for `--trace`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


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
            )
        )
    return sorted(records, key=lambda r: r.start_ns)


def waterfall(records: Sequence[SpanRecord], width: int = 40) -> list[str]:
    """Lines drawing one trace as a tree with offsets and bars (records of one trace id)."""
    if not records:
        return []
    children: dict[str | None, list[SpanRecord]] = {}
    ids = {r.span_id for r in records}
    for record in records:
        parent = record.parent_span_id if record.parent_span_id in ids else None
        children.setdefault(parent, []).append(record)
    start = min(r.start_ns for r in records)
    total = max(max(r.end_ns for r in records) - start, 1)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for record in sorted(children.get(parent, []), key=lambda r: r.start_ns):
            left = int((record.start_ns - start) / total * width)
            size = max(1, int((record.end_ns - record.start_ns) / total * width))
            bar = " " * left + "#" * min(size, width - left) if left < width else " " * width
            label = "  " * depth + record.name
            lines.append(
                f"{(record.start_ns - start) / 1e6:8.2f} ms {(record.end_ns - record.start_ns) / 1e6:7.2f} ms "
                f"{record.kind:<8} {record.service:<13} |{bar:<{width}}| {label}"
            )
            walk(record.span_id, depth + 1)

    walk(None, 0)
    return lines
