"""The tracing plugin: OpenTelemetry spans for publish, process and settle, context in the event.

A PRODUCER span ``send {topic}`` per published event (started in
``polybus_before_publish``, ended in ``polybus_after_publish``); its context
travels in the event's ``traceparent`` / ``tracestate`` (the CloudEvents
distributed-tracing extension). A CONSUMER span ``process {subscription}``
per delivery, child of that context (a new root when the event has none),
started in ``polybus_before_handle`` and made current while the handler runs,
so what the handler publishes or traces is its child; ``polybus_after_handle``
(called exactly once per delivery) adds a CLIENT settle span (``ack``,
``nack``, ``dead_letter``) and ends it. An event published again with a
``traceparent`` already set (a requeued dead letter) starts a span that links
to its original trace.

Without opentelemetry installed, or without a configured TracerProvider, every
hook returns at once and events are left untouched.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.hookspecs import hookimpl
from polybus.core.tracing.carriers import TRACEPARENT, TRACESTATE

# The `otel` extra, imported on first use so importing polybus stays fast.
trace: Any = None
otel_context: Any = None
_loaded = False


def _load_otel() -> bool:
    """Import opentelemetry once; False when it is not installed."""
    global trace, otel_context, _loaded
    if not _loaded:
        _loaded = True
        try:
            from opentelemetry import context as _context
            from opentelemetry import trace as _trace
        except ImportError:
            return False
        trace, otel_context = _trace, _context
    return trace is not None


PLUGIN_NAME = "polybus.tracing"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
INSTRUMENTATION = "polybus"
#: messaging.system per adapter: registry values where one exists (gcp_pubsub,
#: eventgrid); EventBridge has none, so `aws.eventbridge` follows the newest AWS
#: value in the registry (`aws.sns`); the embedded bus is `polybus.local`.
SYSTEMS = {"gcp": "gcp_pubsub", "azure": "eventgrid", "aws": "aws.eventbridge"}
#: Producer spans whose publish never reported back (it raised) end after this long.
PENDING_TIMEOUT = 60.0
SETTLE_OPERATIONS = {
    "acked": "ack",
    "filtered": "ack",
    "retried": "nack",
    "dead-lettered": "dead_letter",
}


def messaging_system(provider: str | None) -> str:
    """The `messaging.system` value for an adapter name (None: not known)."""
    if provider is None:
        return "polybus"
    return SYSTEMS.get(provider, f"polybus.{provider}")


def event_attributes(event: CloudEvent) -> dict[str, str]:
    """The CloudEvents semantic-convention attributes of a span about `event`."""
    attrs = {
        "cloudevents.event_id": event.get_id(),
        "cloudevents.event_source": event.get_source(),
        "cloudevents.event_type": event.get_type(),
    }
    subject = event.get_subject()
    if subject:
        attrs["cloudevents.event_subject"] = subject
    return attrs


@dataclass(frozen=True)
class _Active:
    """The process span of the delivery being handled in this context."""

    subscription: str
    event_id: str
    span: Any
    token: object


@dataclass(frozen=True)
class _Pending:
    span: Any
    started: float


class Tracing:
    """The tracing plugin (registered by polybus.adapters.plugin_manager as ``polybus.tracing``).

    `tracer_provider` None means OpenTelemetry's global provider; `provider`
    is the adapter name, for `messaging.system`.
    """

    def __init__(self, tracer_provider: Any = None, provider: str | None = None) -> None:
        self.tracer_provider = tracer_provider
        self.provider = provider
        self._system = messaging_system(provider)
        self._active: ContextVar[_Active | None] = ContextVar("polybus_trace", default=None)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()
        self._cached: tuple[Any, Any] | None = None

    def configure(self, *, tracer_provider: Any = None, provider: str | None = None) -> Tracing:
        """Use `tracer_provider` (instead of the global one) and name the adapter; returns self."""
        if tracer_provider is not None:
            self.tracer_provider = tracer_provider
        if provider is not None:
            self.provider = provider
            self._system = messaging_system(provider)
        return self

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded: opentelemetry installed and a TracerProvider configured."""
        return self._tracer() is not None

    def _tracer(self) -> Any:
        if trace is None and not _load_otel():
            return None
        provider = self.tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        cached = self._cached
        if cached is None or cached[0] is not provider:
            cached = (provider, provider.get_tracer(INSTRUMENTATION))
            self._cached = cached
        return cached[1]

    # publishing ------------------------------------------------------------------

    @hookimpl
    def polybus_before_publish(self, event: CloudEvent, topic: str) -> Mapping[str, Any] | None:
        """Start the PRODUCER span and return its context as traceparent/tracestate."""
        tracer = self._tracer()
        if tracer is None:
            return None
        links = []
        earlier = _extract(event)
        if earlier is not None:  # published again (a requeue): link to where it came from
            links.append(trace.Link(trace.get_current_span(earlier).get_span_context()))
        attributes = {
            "messaging.system": self._system,
            "messaging.destination.name": topic,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            **event_attributes(event),
        }
        span = tracer.start_span(
            f"send {topic}", kind=trace.SpanKind.PRODUCER, attributes=attributes, links=links
        )
        carrier = _inject(span.get_span_context())
        if not span.is_recording():  # sampled out: nothing to time, only the context to pass on
            span.end()
            return carrier
        now = time.monotonic()
        with self._lock:
            stale = self._pending.pop((topic, event.get_id()), None)
            self._pending[(topic, event.get_id())] = _Pending(span, now)
        if stale is not None:
            stale.span.end()
        if now - self._swept > PENDING_TIMEOUT / 4:
            self._sweep(now)
        return carrier

    @hookimpl
    def polybus_after_publish(self, events: Sequence[CloudEvent], topic: str) -> None:
        """End the PRODUCER spans of a batch the provider accepted."""
        if not self._pending:
            return
        with self._lock:
            done = [self._pending.pop((topic, event.get_id()), None) for event in events]
        for pending in done:
            if pending is not None:
                pending.span.end()

    def _sweep(self, now: float) -> None:
        """End producer spans whose publish raised (after_publish never came), as errors."""
        self._swept = now
        with self._lock:
            old = [k for k, p in self._pending.items() if now - p.started > PENDING_TIMEOUT]
            stale = [self._pending.pop(k) for k in old]
        for pending in stale:
            pending.span.set_status(trace.Status(trace.StatusCode.ERROR, "publish not confirmed"))
            pending.span.end()

    def flush(self) -> None:
        """End every producer span still waiting for its publish to report back."""
        self._sweep(time.monotonic() + PENDING_TIMEOUT + 1)

    # handling ----------------------------------------------------------------------

    @hookimpl(tryfirst=True)  # before other middleware, so a delivery they refuse is traced too
    def polybus_before_handle(self, event: CloudEvent, subscription: str) -> None:
        """Start the CONSUMER span, child of the event's traceparent, and make it current."""
        tracer = self._tracer()
        if tracer is None:
            return
        self._end_active("delivery not settled")  # a previous delivery whose after_handle never ran
        parent = _extract(event) or otel_context.Context()  # no context: a new root
        attributes = {
            "messaging.system": self._system,
            "messaging.destination.subscription.name": subscription,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            **event_attributes(event),
        }
        span = tracer.start_span(
            f"process {subscription}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        self._active.set(_Active(subscription, event.get_id(), span, token))

    @hookimpl
    def polybus_after_handle(
        self, event: CloudEvent, subscription: str, outcome: str, error: BaseException | None
    ) -> None:
        """Record the settle span (ack, nack, dead_letter) and end the CONSUMER span."""
        active = self._active.get()
        if active is None or (active.subscription, active.event_id) != (
            subscription,
            event.get_id(),
        ):
            return
        tracer = self._tracer()
        operation = SETTLE_OPERATIONS.get(outcome, outcome)
        span = active.span
        if tracer is not None and span.is_recording():
            settle = tracer.start_span(
                f"{operation} {subscription}",
                context=trace.set_span_in_context(span),
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "messaging.system": self._system,
                    "messaging.destination.subscription.name": subscription,
                    "messaging.operation.name": operation,
                    "messaging.operation.type": "settle",
                },
            )
            settle.end()
        span.set_attribute("polybus.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(
                trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
            )
        self._end_active(None)

    def _end_active(self, problem: str | None) -> None:
        active = self._active.get()
        if active is None:
            return
        self._active.set(None)
        if problem is not None:
            active.span.set_status(trace.Status(trace.StatusCode.ERROR, problem))
        active.span.end()
        otel_context.detach(active.token)


def _inject(ctx: Any) -> dict[str, str]:
    """traceparent (and tracestate) for a span context, W3C format, without a propagator."""
    carrier = {TRACEPARENT: f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        carrier[TRACESTATE] = ctx.trace_state.to_header()
    return carrier


def _extract(event: CloudEvent) -> Any:
    """The OpenTelemetry context in the event's traceparent/tracestate, or None."""
    value = event.get_extension(TRACEPARENT)
    parsed = _TRACEPARENT.fullmatch(value) if isinstance(value, str) else None
    if parsed is None:
        return None
    trace_id, span_id = int(parsed[1], 16), int(parsed[2], 16)
    if not trace_id or not span_id:
        return None
    tracestate = event.get_extension(TRACESTATE)
    state = trace.TraceState.from_header([tracestate]) if isinstance(tracestate, str) else None
    remote = trace.SpanContext(trace_id, span_id, True, trace.TraceFlags(int(parsed[3], 16)), state)
    return trace.set_span_in_context(trace.NonRecordingSpan(remote), otel_context.Context())


def install(pm: Any, *, tracer_provider: Any = None, provider: str | None = None) -> Tracing:
    """The Tracing plugin of `pm`, registered now if it is not yet; configured as given."""
    tracing = pm.get_plugin(PLUGIN_NAME)
    if tracing is None:
        tracing = Tracing()
        pm.register(tracing, name=PLUGIN_NAME)
    assert isinstance(tracing, Tracing)
    return tracing.configure(tracer_provider=tracer_provider, provider=provider)


def install_if_configured(pm: Any) -> Tracing | None:
    """Register tracing only when OpenTelemetry is installed and a global TracerProvider is set.

    Unconfigured, the plugin would still be called for every publish and
    delivery (measured: the memory bus fell from 240k to 40k events/s with the
    default plugins), so it is left out; `install(pm)` adds it explicitly.
    """
    if not _load_otel():
        return None
    if isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    ):
        return None
    return install(pm)
