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

from polybus.core.filters.dialects import Filter

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


def normalize(flt: Filter) -> Filter:
    """The filter with every `Sql` part rewritten as an equivalent portable tree.

    See polybus.core.filters.cesql.lowering: ``type = 'a' AND subject LIKE 'eu-%'``
    becomes ``All(Exact(type, a), Prefix(subject, eu-))``; parts with no
    simpler form stay `Sql`.
    """
    from polybus.core.filters.cesql.lowering import conjoin, disjoin, lower_sql, negate
    from polybus.core.filters.dialects import All, AnyOf, Not, Sql

    match flt:
        case Sql(expression):
            return lower_sql(expression)
        case All(filters):
            return conjoin([normalize(f) for f in filters])
        case AnyOf(filters):
            return disjoin([normalize(f) for f in filters])
        case Not(inner):
            return negate(normalize(inner))
    return flt


def conjuncts(flt: Filter) -> list[Filter]:
    """The top-level parts of a conjunction (the filter itself when it is not one)."""
    from polybus.core.filters.dialects import All

    return list(flt.filters) if isinstance(flt, All) else [flt]


def residual_of(original: Filter, left: list[Filter], total: int) -> Filter | None:
    """The residual: nothing, the original filter when nothing was native, else the parts left."""
    from polybus.core.filters.dialects import All

    if not left:
        return None
    if len(left) == total:
        return original
    return left[0] if len(left) == 1 else All(tuple(left))
