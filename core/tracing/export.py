"""Finished spans as records, kept in memory or written to / tailed from a JSON-lines file.

- `SpanRecorder`: an exporter keeping the latest records in memory; `attach`
  adds it to an SDK TracerProvider (the dashboard feeds on it in-process).
- `JsonLinesExporter`: an exporter appending one line per span to a file, the
  format of ``polybus demo --trace-out`` (services write it, the dashboard tails it).
- `JsonLinesSource`: reads such a file incrementally (``polybus dashboard --traces FILE``).

The exporters follow the OpenTelemetry SDK's exporter interface (export,
shutdown, force_flush) without importing it.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from polybus.core.errors import ValidationError
from polybus.core.tracing.records import SpanRecord, from_json, from_spans

#: How many records a recorder or a file source keeps (the newest).
LIMIT = 5000
#: At most this much of a span file is read per call: a larger backlog is skipped to its tail.
MAX_READ = 16 * 1024 * 1024
_SUCCESS: Any = None


def _success() -> Any:
    """The SDK's SpanExportResult.SUCCESS (imported once, when the SDK calls an exporter)."""
    global _SUCCESS
    if _SUCCESS is None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        _SUCCESS = SpanExportResult.SUCCESS
    return _SUCCESS


class SpanRecorder:
    """Keeps the newest `limit` finished spans as records (thread-safe)."""

    def __init__(
        self, limit: int = LIMIT, service_of: Callable[[Any], str | None] | None = None
    ) -> None:
        self._records: deque[SpanRecord] = deque(maxlen=limit)
        self._service_of = service_of
        self._lock = threading.Lock()
        self.note: str | None = None

    def attach(self, provider: Any) -> SpanRecorder:
        """Record every span `provider` (an SDK TracerProvider) ends from now on; returns self."""
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(cast(Any, self)))  # duck-typed exporter
        return self

    def add(self, records: Sequence[SpanRecord]) -> None:
        """Keep these records (newest last)."""
        with self._lock:
            self._records.extend(records)

    def export(self, spans: Sequence[Any]) -> Any:
        """The SDK exporter call: record the spans."""
        self.add(from_spans(spans, self._service_of))
        return _success()

    def records(self) -> list[SpanRecord]:
        """The records kept, oldest first."""
        with self._lock:
            return list(self._records)

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered."""
        return True


class JsonLinesExporter:
    """Appends each finished span to `path` as one JSON line (`SpanRecord.to_json`)."""

    def __init__(self, path: str | Path, service_of: Callable[[Any], str | None] | None = None):
        self.path = Path(path)
        self._service_of = service_of
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> Any:
        """The SDK exporter call: append the spans."""
        text = "".join(r.to_json() + "\n" for r in from_spans(spans, self._service_of))
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text)
        return _success()

    def shutdown(self) -> None:
        """Nothing to release: the file is opened per batch."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every batch is written when exported."""
        return True


class JsonLinesSource:
    """Tails a JSON-lines span file: each `records()` reads what was appended since the last."""

    def __init__(self, path: str | Path, limit: int = LIMIT) -> None:
        self.path = Path(path)
        self._records: deque[SpanRecord] = deque(maxlen=limit)
        self._offset = 0
        self._line = 0
        self._bad = 0
        self._first_bad: str | None = None
        self._exact = True
        self._lock = threading.Lock()
        self.note: str | None = None

    def records(self) -> list[SpanRecord]:
        """Every record kept, after reading the lines appended since the last call."""
        with self._lock:
            self._read()
            return list(self._records)

    def _read(self) -> None:
        try:
            size = self.path.stat().st_size
        except OSError:
            self.note = f"waiting for {self.path} (no such file yet)"
            return
        if size < self._offset:  # truncated or replaced: start again
            self._records.clear()
            self._offset = self._line = self._bad = 0
            self._first_bad, self._exact = None, True
        skipped = max(0, size - self._offset - MAX_READ)  # far behind: read the newest lines only
        with self.path.open("rb") as stream:
            stream.seek(self._offset + skipped)
            chunk = stream.read(size - self._offset - skipped)
        if skipped:
            start = chunk.find(b"\n") + 1  # drop the line the cut fell in
            self._exact = False  # line numbers are unknown from here on
            self._offset += skipped + start
            chunk = chunk[start:]
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for its newline
        self._offset += end
        for raw in chunk[:end].splitlines():
            self._line += 1
            if not raw.strip():
                continue
            try:
                self._records.append(from_json(json.loads(raw)))
            except ValidationError as exc:
                self._skip(str(exc.problems[0]))
            except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
                self._skip(f"not JSON: {exc}")
        self.note = (
            None
            if not self._bad
            else f"{self._bad} malformed line(s) skipped in {self.path} (first: {self._first_bad})"
        )

    def _skip(self, reason: str) -> None:
        self._bad += 1
        if self._first_bad is None:
            where = f"line {self._line}" if self._exact else "a line after the skipped start"
            self._first_bad = f"{where}: {reason}"
