"""The rule's event pattern for a portable filter, and the residual left for the client.

The pattern comes from core.filters.native.eventbridge.to_eventbridge, which
compiles against this adapter's mapping (CloudEvent attributes under
``detail``). While that compiler passes everything (native None), a small
fallback here expresses what is certainly safe: `exact` on the string-typed
context attributes, alone or inside `all`. A rule needs a non-empty pattern,
so "pass everything" is ``{"source": [{"prefix": ""}]}`` (every event has a
source). Patterns longer than AWS's 2,048 characters fall back to that too,
leaving the whole filter to the client.
"""

from __future__ import annotations

import json
from typing import Any

from core.filters.dialects import All, Exact, Filter
from core.filters.native.eventbridge import to_eventbridge

MATCH_ALL: dict[str, Any] = {"source": [{"prefix": ""}]}
MAX_PATTERN_CHARS = 2048
# Attributes always carried as JSON strings in the Detail, so a string match is exact.
STRING_ATTRIBUTES = frozenset(
    {"id", "source", "type", "specversion", "subject", "datacontenttype", "dataschema"}
)


def event_pattern(flt: Filter | None) -> tuple[str, Filter | None]:
    """The rule's event pattern (JSON text) and the residual filter for the client."""
    compiled = to_eventbridge(flt)
    native: Any = compiled.native
    residual = compiled.residual
    if native is None and flt is not None:
        native, residual = _exact_fallback(flt)
    if native is None:
        return _dumps(MATCH_ALL), flt
    text = native if isinstance(native, str) else _dumps(native)
    if len(text) > MAX_PATTERN_CHARS:
        return _dumps(MATCH_ALL), flt
    return text, residual


def _exact_fallback(flt: Filter) -> tuple[dict[str, Any] | None, Filter | None]:
    parts = flt.filters if isinstance(flt, All) else (flt,)
    detail: dict[str, list[str]] = {}
    rest: list[Filter] = []
    for part in parts:
        if (
            isinstance(part, Exact)
            and part.attribute in STRING_ATTRIBUTES
            and part.attribute not in detail
        ):
            detail[part.attribute] = [part.value]
        else:
            rest.append(part)
    if not detail:
        return None, flt
    residual: Filter | None
    if not rest:
        residual = None
    elif len(rest) == 1:
        residual = rest[0]
    else:
        residual = All(tuple(rest))
    return {"detail": detail}, residual


def _dumps(pattern: Any) -> str:
    return json.dumps(pattern, separators=(",", ":"), sort_keys=True)
