"""The CloudEvents Subscriptions API filter dialects as immutable values.

A portable filter is written once and handed to any adapter. It is one of
`Exact`, `Prefix`, `Suffix`, `All`, `AnyOf`, `Not` or `Sql`; `parse_filter`
reads the Subscriptions API JSON form (``{"exact": {"type": "x"}}``) or a CESQL
string, `to_json` writes it back, and `compile_filter` turns it into a fast
predicate over an event's attribute mapping (data excluded).

Matching follows the Subscriptions API spec: attribute names are matched in
lower case, values as their canonical string form and case-sensitively, and a
missing attribute never matches `exact`, `prefix` or `suffix`.

`parse_filter` raises only FilterError, whatever it is given: `all`, `any`
and `not` nest at most `MAX_NESTING` levels, and the values an error shows
are cut short.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from polybus.core.errors import FilterError, Problem

Attributes = Mapping[str, Any]
Predicate = Callable[[Attributes], bool]

_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
MAX_NESTING = 32
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _shown(value: Any) -> Any:
    """A value as an error may show it (scalars as they are, anything else a short repr)."""
    if value is None or type(value) in (bool, float) or (type(value) is int and value < 2**64):
        return value
    if type(value) is str:
        return value if len(value) <= 200 else value[:200] + "..."
    return _REPR.repr(value)


@dataclass(frozen=True)
class Exact:
    """The attribute's canonical string equals `value`."""

    attribute: str
    value: str


@dataclass(frozen=True)
class Prefix:
    """The attribute's canonical string starts with `value`."""

    attribute: str
    value: str


@dataclass(frozen=True)
class Suffix:
    """The attribute's canonical string ends with `value`."""

    attribute: str
    value: str


@dataclass(frozen=True)
class All:
    """Every nested filter matches (true when empty)."""

    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one nested filter matches (false when empty). JSON name: ``any``."""

    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    """The nested filter does not match."""

    filter: Filter


@dataclass(frozen=True)
class Sql:
    """A CESQL v1 expression; matches when it evaluates to true without error."""

    expression: str


Filter = Union[Exact, Prefix, Suffix, All, AnyOf, Not, Sql]  # noqa: UP007 - runtime alias


def canonical_string(value: Any) -> str:
    """The CloudEvents canonical string form of an attribute value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)


def parse_filter(spec: Any, *, path: str = "filter") -> Filter:
    """Read a filter from its Subscriptions API JSON form or a CESQL string.

    Raises `FilterError` naming the path, the value and the rule broken.
    """
    return _parse(spec, path, 0)


def _parse(spec: Any, path: str, depth: int) -> Filter:
    if depth > MAX_NESTING:
        raise FilterError(
            "invalid filter",
            [Problem(path, _shown(spec), f"filters nest at most {MAX_NESTING} levels deep")],
        )
    if isinstance(spec, Exact | Prefix | Suffix | All | AnyOf | Not | Sql):
        return spec
    if isinstance(spec, str):
        return _sql(spec, path)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise FilterError(
            "invalid filter",
            [
                Problem(
                    path,
                    _shown(spec),
                    "must be a CESQL string or an object with exactly one dialect key",
                )
            ],
        )
    ((dialect, body),) = spec.items()
    here = f"{path}.{_shown(dialect)}"
    if dialect in ("exact", "prefix", "suffix"):
        if not isinstance(body, Mapping) or len(body) != 1:
            raise FilterError(
                "invalid filter",
                [Problem(here, _shown(body), "must be an object with exactly one attribute")],
            )
        ((attribute, value),) = body.items()
        problems = []
        if not isinstance(attribute, str) or not _ATTRIBUTE_NAME.fullmatch(attribute.lower()):
            problems.append(Problem(here, _shown(attribute), "attribute names are [a-z0-9]{1,20}"))
        if not isinstance(value, str):
            problems.append(
                Problem(f"{here}.{_shown(attribute)}", _shown(value), "value must be a string")
            )
        elif dialect != "exact" and value == "":
            problems.append(
                Problem(f"{here}.{_shown(attribute)}", _shown(value), "value must not be empty")
            )
        if problems:
            raise FilterError("invalid filter", problems)
        if dialect == "exact":
            return Exact(attribute.lower(), value)
        if dialect == "prefix":
            return Prefix(attribute.lower(), value)
        return Suffix(attribute.lower(), value)
    if dialect in ("all", "any"):
        if not isinstance(body, list):
            raise FilterError(
                "invalid filter", [Problem(here, _shown(body), "must be a list of filters")]
            )
        nested = tuple(_parse(item, f"{here}[{i}]", depth + 1) for i, item in enumerate(body))
        return All(nested) if dialect == "all" else AnyOf(nested)
    if dialect == "not":
        return Not(_parse(body, here, depth + 1))
    if dialect == "sql":
        if not isinstance(body, str):
            raise FilterError(
                "invalid filter", [Problem(here, _shown(body), "must be a CESQL string")]
            )
        return _sql(body, here)
    raise FilterError(
        "invalid filter",
        [
            Problem(
                path,
                _shown(dialect),
                "unknown dialect; expected exact, prefix, suffix, all, any, not or sql",
            )
        ],
    )


def _sql(expression: str, path: str) -> Sql:
    from polybus.core.filters import cesql

    cesql.parse(expression, path=path)  # raises FilterError with the position
    return Sql(expression)


def to_json(flt: Filter) -> Any:
    """The Subscriptions API JSON form of a filter."""
    match flt:
        case Exact(a, v):
            return {"exact": {a: v}}
        case Prefix(a, v):
            return {"prefix": {a: v}}
        case Suffix(a, v):
            return {"suffix": {a: v}}
        case All(fs):
            return {"all": [to_json(f) for f in fs]}
        case AnyOf(fs):
            return {"any": [to_json(f) for f in fs]}
        case Not(f):
            return {"not": to_json(f)}
        case Sql(e):
            return {"sql": e}
    raise TypeError(f"not a filter: {flt!r}")


def compile_filter(flt: Filter | None) -> Predicate:
    """A predicate over an attribute mapping; None compiles to match-everything."""
    if flt is None:
        return _always
    match flt:
        case Exact(a, v):
            return _exact(a, v)
        case Prefix(a, v):
            return _prefix(a, v)
        case Suffix(a, v):
            return _suffix(a, v)
        case All(fs):
            preds = tuple(compile_filter(f) for f in fs)
            return lambda attrs: all(p(attrs) for p in preds)
        case AnyOf(fs):
            preds = tuple(compile_filter(f) for f in fs)
            return lambda attrs: any(p(attrs) for p in preds)
        case Not(f):
            pred = compile_filter(f)
            return lambda attrs: not pred(attrs)
        case Sql(e):
            from polybus.core.filters import cesql

            return cesql.parse(e).matches
    raise TypeError(f"not a filter: {flt!r}")


def _always(attrs: Attributes) -> bool:
    return True


def _exact(attribute: str, value: str) -> Predicate:
    def match(attrs: Attributes) -> bool:
        got = attrs.get(attribute)
        if got is None:
            return False
        return (got if type(got) is str else canonical_string(got)) == value

    return match


def _prefix(attribute: str, value: str) -> Predicate:
    def match(attrs: Attributes) -> bool:
        got = attrs.get(attribute)
        if got is None:
            return False
        return (got if type(got) is str else canonical_string(got)).startswith(value)

    return match


def _suffix(attribute: str, value: str) -> Predicate:
    def match(attrs: Attributes) -> bool:
        got = attrs.get(attribute)
        if got is None:
            return False
        return (got if type(got) is str else canonical_string(got)).endswith(value)

    return match
