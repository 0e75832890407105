"""The guarantee every native compiler gives, checked on one event and one filter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polybus.core.filters.dialects import Filter, compile_filter
from polybus.core.filters.native import Compiled


def check_guarantee(
    flt: Filter,
    attrs: Mapping[str, Any],
    compile_native: Callable[[Filter], Compiled[Any]],
    evaluate_native: Callable[[Any, Mapping[str, Any]], bool],
) -> None:
    """Native never rejects what the portable filter accepts; native AND residual is the filter."""
    portable = compile_filter(flt)(attrs)
    compiled = compile_native(flt)
    native = evaluate_native(compiled.native, attrs)
    residual = compile_filter(compiled.residual)(attrs)
    if portable:
        assert native, f"native {compiled.native!r} rejects an accepted event"
    assert (native and residual) == portable, (
        f"native {compiled.native!r}, residual {compiled.residual!r}"
    )
