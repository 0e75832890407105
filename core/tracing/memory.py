"""An OpenTelemetry SDK provider that keeps finished spans in memory (demo, tests, bench)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polybus.core.extras import Requirement

SDK = Requirement("tracing", ("opentelemetry.sdk",), "otel")


@dataclass(frozen=True)
class MemoryTracing:
    """A TracerProvider and the in-memory exporter its spans go to."""

    provider: Any  # opentelemetry.sdk.trace.TracerProvider
    exporter: Any  # opentelemetry.sdk.trace.export.in_memory_span_exporter.InMemorySpanExporter

    def spans(self) -> list[Any]:
        """The finished spans so far."""
        return list(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the finished spans."""
        self.exporter.clear()


def memory_tracing(service: str = "polybus") -> MemoryTracing:
    """A fresh TracerProvider exporting synchronously to memory (MissingExtraError without `otel`)."""
    SDK.check()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return MemoryTracing(provider, exporter)
