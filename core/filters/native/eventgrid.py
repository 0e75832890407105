"""Compile a portable filter to the native eventgrid filter (placeholder: all client-side)."""

from __future__ import annotations

from typing import Any

from core.filters.dialects import Filter
from core.filters.native import Compiled


def to_eventgrid(flt: Filter | None) -> Compiled[Any]:
    """Native filter plus residual; for now the provider passes everything."""
    return Compiled(native=None, residual=flt)
