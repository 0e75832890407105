"""W3C trace context to and from OpenTelemetry span contexts, without a propagator.

The plugin's hot path: `inject` formats a span context as ``traceparent`` /
``tracestate``; `remote_context` parses an event's ``traceparent`` once into a
remote SpanContext (slicing, not a regular expression), which `extract` wraps
in an OpenTelemetry Context to use as a parent and the batch send span uses
as a link.
"""

from __future__ import annotations

from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.tracing.carriers import TRACEPARENT, TRACESTATE

_HEX = frozenset("0123456789abcdef")


def inject(ctx: Any) -> dict[str, str]:
    """traceparent (and tracestate) for an OpenTelemetry SpanContext, W3C version 00."""
    carrier = {TRACEPARENT: f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        carrier[TRACESTATE] = ctx.trace_state.to_header()
    return carrier


def parse(value: object) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a version-00 traceparent, or None when it is not one."""
    if not isinstance(value, str) or len(value) != 55 or not value.startswith("00-"):
        return None
    if value[35] != "-" or value[52] != "-" or not _HEX.issuperset(value[3:35] + value[36:52]):
        return None
    trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
    if not trace_id or not span_id or not _HEX.issuperset(value[53:55]):
        return None
    return trace_id, span_id, int(value[53:55], 16)


def remote_context(trace: Any, event: CloudEvent) -> Any:
    """The remote SpanContext in the event's traceparent/tracestate, or None."""
    parsed = parse(event.get_extension(TRACEPARENT))
    if parsed is None:
        return None
    tracestate = event.get_extension(TRACESTATE)
    state = trace.TraceState.from_header([tracestate]) if isinstance(tracestate, str) else None
    return trace.SpanContext(parsed[0], parsed[1], True, trace.TraceFlags(parsed[2]), state)


def extract(trace: Any, otel_context: Any, event: CloudEvent) -> Any:
    """An OpenTelemetry Context whose span is the event's remote parent, or None."""
    remote = remote_context(trace, event)
    if remote is None:
        return None
    return trace.set_span_in_context(trace.NonRecordingSpan(remote), otel_context.Context())
