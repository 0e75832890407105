"""Trace context in the forms providers carry it: W3C ``traceparent`` and AWS X-Ray ``TraceHeader``.

Pure functions, no OpenTelemetry import: the adapters' mapping modules use
them to write the event's ``traceparent`` (CloudEvents distributed-tracing
extension) into a provider's native carrier, and to read one back when an
event arrives without the extension (a producer that is not polybus).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: The attribute google-cloud-pubsub's own OpenTelemetry tracing reads and writes.
PUBSUB_TRACEPARENT = "googclient_traceparent"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_XRAY_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class TraceParent:
    """A parsed W3C traceparent (version 00)."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    sampled: bool

    def header(self) -> str:
        """The ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: object) -> TraceParent | None:
    """The traceparent in `value`, or None when it is not a valid version-00 header."""
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return TraceParent(match[1], match[2], int(match[3], 16) & 1 == 1)


def to_xray(traceparent: object) -> str | None:
    """The X-Ray ``TraceHeader`` (Root, Parent, Sampled) for a traceparent, or None if invalid."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    tid = parsed.trace_id
    return f"Root=1-{tid[:8]}-{tid[8:]};Parent={parsed.span_id};Sampled={int(parsed.sampled)}"


def from_xray(header: object) -> str | None:
    """The traceparent for an X-Ray ``TraceHeader``, or None when it has no Root and Parent."""
    if not isinstance(header, str):
        return None
    fields = dict(part.split("=", 1) for part in header.replace(" ", "").split(";") if "=" in part)
    root = _XRAY_ROOT.match(fields.get("Root", "").lower())
    parent = fields.get("Parent", "").lower()
    if root is None or not _HEX16.match(parent):
        return None
    sampled = fields.get("Sampled", "1") != "0"
    parsed = parse_traceparent(f"00-{root[1]}{root[2]}-{parent}-{'01' if sampled else '00'}")
    return None if parsed is None else parsed.header()
