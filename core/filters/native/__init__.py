"""Compilers from a portable filter to each provider's native filter.

Each compiler returns a `Compiled`: the native filter the provider evaluates
(None when the provider must pass everything) and the residual the adapter
evaluates client-side after delivery (None when nothing is left). The
guarantee: the native filter never rejects an event the portable filter
accepts, and native AND residual is exactly the portable filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from core.filters.dialects import Filter

T = TypeVar("T")


@dataclass(frozen=True)
class Compiled(Generic[T]):
    """A native filter plus the residual left for the client."""

    native: T | None
    residual: Filter | None

    @property
    def verdict(self) -> str:
        """'fully native', 'partly native' or 'client-side only'."""
        if self.residual is None:
            return "fully native"
        if self.native is None:
            return "client-side only"
        return "partly native"
