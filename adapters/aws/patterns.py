"""The rule's event pattern for a portable filter, and the residual left for the client.

The pattern comes from polybus.adapters.aws.filters.to_eventbridge, which
compiles against this adapter's mapping (type as detail-type, source as
source, every other attribute under ``detail``). A rule needs a non-empty
pattern, so "pass everything" (native None) becomes
``{"source": [{"prefix": ""}]}``: every event has a source. A pattern longer
than AWS's 2,048 characters falls back to that too, leaving the whole filter
to the client.
"""

from __future__ import annotations

import json
from typing import Any

from polybus.adapters.aws.filters import to_eventbridge
from polybus.core.filters.dialects import Filter

MATCH_ALL: dict[str, Any] = {"source": [{"prefix": ""}]}
MAX_PATTERN_CHARS = 2048


def event_pattern(flt: Filter | None) -> tuple[str, Filter | None]:
    """The rule's event pattern (JSON text) and the residual filter for the client."""
    compiled = to_eventbridge(flt)
    native: Any = compiled.native
    residual = compiled.residual
    if not native:  # None or {}: the provider passes everything
        return _dumps(MATCH_ALL), residual
    text = native if isinstance(native, str) else _dumps(native)
    if len(text) > MAX_PATTERN_CHARS:
        return _dumps(MATCH_ALL), flt
    return text, residual


def _dumps(pattern: Any) -> str:
    return json.dumps(pattern, separators=(",", ":"), sort_keys=True)
