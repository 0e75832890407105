"""Compile a portable filter to an Azure Event Grid subscription filter, and evaluate such filters.

`compile_filter` is the native compiler the plugin registers; `evaluate_eventgrid`
is an independent reading of the documented semantics, used by the property tests
(the emulator has its own evaluator in emulator/filter.py).

Shape (CloudEvents schema; keys are attribute names: type, source, subject,
id, extensions)::

    {"includedEventTypes": [...], "subjectBeginsWith": "...", "subjectEndsWith": "...",
     "advancedFilters": [{"operatorType": "StringIn", "key": "source", "values": [...]}, ...]}

Real semantics (learn.microsoft.com/azure/event-grid/event-filtering): string
comparisons ignore case, the values of one filter are OR'ed and the filters
AND'ed, a missing key never matches except for StringNotIn / NumberNotIn; at
most 25 advanced filters and 25 values in all, 512 characters per string.
Because of the case-insensitivity every string test is only a broader native
filter and stays in the residual; presence (IsNotNull / IsNullOrUndefined) is
exact. A NOT of a string test cannot be native (it would reject 'ABC' when the
portable filter only excludes 'abc').
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from polybus.core.filters.cesql.ast import required_attributes
from polybus.core.filters.cesql.lowering import exists_attribute
from polybus.core.filters.cesql.parser import CesqlSyntaxError, parse_expression
from polybus.core.filters.dialects import (
    All,
    AnyOf,
    Exact,
    Filter,
    Not,
    Prefix,
    Sql,
    Suffix,
    canonical_string,
)
from polybus.core.filters.native import Compiled, conjuncts, normalize, residual_of

MAX_ADVANCED_FILTERS = 25
MAX_VALUES = 25
MAX_STRING_CHARS = 512
STRING_ATTRIBUTES = frozenset(
    {"id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema"}
)

#: One condition: ("types", values) | ("begins", value) | ("ends", value) | ("advanced", filter)
Condition = tuple[str, Any]
Part = tuple[list[Condition] | None, bool]  # (conditions AND'ed, or None for everything; exact?)


def compile_filter(flt: Filter | None) -> Compiled[dict[str, Any]]:
    """The subscription filter (None: everything passes) and the residual for the client."""
    if flt is None:
        return Compiled(None, None)
    parts = conjuncts(normalize(flt))
    compiled = [_compile(p) for p in parts]
    order = sorted(range(len(parts)), key=lambda i: not compiled[i][1])
    native: dict[str, Any] = {}
    enforced = [False] * len(parts)
    for i in order:
        conditions, exact = compiled[i]
        if conditions is None:
            enforced[i] = exact
            continue
        merged = _add(native, conditions)
        if merged is not None:
            native, enforced[i] = merged, exact
    left = [part for part, done in zip(parts, enforced, strict=True) if not done]
    return Compiled(native or None, residual_of(flt, left, len(parts)))


def _add(native: dict[str, Any], conditions: list[Condition]) -> dict[str, Any] | None:
    """The native filter with the conditions added, or None when a limit would be broken."""
    out = {k: (list(v) if isinstance(v, list) else v) for k, v in native.items()}
    for kind, arg in conditions:
        if kind == "types" and "includedEventTypes" not in out:
            out["includedEventTypes"] = list(arg)
        elif kind == "types":
            _advanced(out, {"operatorType": "StringIn", "key": "type", "values": list(arg)})
        elif kind == "begins" and "subjectBeginsWith" not in out:
            out["subjectBeginsWith"] = arg
        elif kind == "ends" and "subjectEndsWith" not in out:
            out["subjectEndsWith"] = arg
        elif kind in ("begins", "ends"):
            op = "StringBeginsWith" if kind == "begins" else "StringEndsWith"
            _advanced(out, {"operatorType": op, "key": "subject", "values": [arg]})
        else:
            _advanced(out, arg)
    advanced = out.get("advancedFilters", [])
    values = sum(len(f.get("values", [])) for f in advanced)
    strings = [*out.get("includedEventTypes", [])]
    strings += [out[k] for k in ("subjectBeginsWith", "subjectEndsWith") if k in out]
    strings += [v for f in advanced for v in f.get("values", []) if isinstance(v, str)]
    if (
        len(advanced) > MAX_ADVANCED_FILTERS
        or values > MAX_VALUES
        or any(len(s) > MAX_STRING_CHARS for s in strings)
    ):
        return None
    return out


def _advanced(out: dict[str, Any], flt: dict[str, Any]) -> None:
    out.setdefault("advancedFilters", []).append(flt)


def _present(attribute: str) -> list[Condition]:
    return [("advanced", {"operatorType": "IsNotNull", "key": attribute})]


def _could_be_typed(attribute: str, matches: Any) -> bool:
    """Whether a boolean value of this attribute could pass the string test (as true/false)."""
    if attribute in STRING_ATTRIBUTES:
        return False
    return bool(matches("true") or matches("false"))


def _compile(flt: Filter) -> Part:
    match flt:
        case Exact("type", v):
            return [("types", [v])], False
        case Exact(a, v):
            if a not in STRING_ATTRIBUTES and (
                re.fullmatch(r"-?[0-9]+", v) or v in ("true", "false")
            ):
                return _present(a), False
            return [("advanced", {"operatorType": "StringIn", "key": a, "values": [v]})], False
        case Prefix(a, v):
            if a == "subject":
                return [("begins", v)], False
            digits = a not in STRING_ATTRIBUTES and bool(re.fullmatch(r"-?[0-9]*", v))
            if digits or _could_be_typed(a, lambda s: s.startswith(v)):
                return _present(a), False
            return [
                ("advanced", {"operatorType": "StringBeginsWith", "key": a, "values": [v]})
            ], False
        case Suffix(a, v):
            if a == "subject":
                return [("ends", v)], False
            ends_digit = a not in STRING_ATTRIBUTES and v[-1:].isdigit()
            if ends_digit or _could_be_typed(a, lambda s: s.endswith(v)):
                return _present(a), False
            return [
                ("advanced", {"operatorType": "StringEndsWith", "key": a, "values": [v]})
            ], False
        case Not(inner):
            name = exists_attribute(inner)
            if name is not None:
                return [("advanced", {"operatorType": "IsNullOrUndefined", "key": name})], True
            return None, False
        case All(filters):
            parts = [_compile(f) for f in filters]
            conditions = [c for cs, _ in parts if cs for c in cs]
            return (conditions or None), all(e for _, e in parts)
        case AnyOf(filters):
            return _disjunction(filters)
        case Sql(expression):
            return _sql(expression)
    raise TypeError(f"not a filter: {flt!r}")


def _disjunction(filters: tuple[Filter, ...]) -> Part:
    """An OR survives only as the values of one filter: same operator, same key."""
    parts = [_compile(f) for f in filters]
    if not parts or any(cs is None or len(cs) != 1 for cs, _ in parts):
        return None, False
    conditions = [cs[0] for cs, _ in parts if cs]
    exact = all(e for _, e in parts)
    kinds = {kind for kind, _ in conditions}
    if kinds == {"types"}:
        return [("types", [v for _, vs in conditions for v in vs])], exact
    as_advanced = [_to_advanced(c) for c in conditions]
    first = as_advanced[0]
    if all(
        a["operatorType"] == first["operatorType"] and a["key"] == first["key"] for a in as_advanced
    ):
        if "values" not in first:
            return [("advanced", first)], exact
        values = [v for a in as_advanced for v in a["values"]]
        return [("advanced", {**first, "values": values})], exact
    return None, False


def _to_advanced(condition: Condition) -> dict[str, Any]:
    kind, arg = condition
    if kind == "types":
        return {"operatorType": "StringIn", "key": "type", "values": list(arg)}
    if kind == "begins":
        return {"operatorType": "StringBeginsWith", "key": "subject", "values": [arg]}
    if kind == "ends":
        return {"operatorType": "StringEndsWith", "key": "subject", "values": [arg]}
    return dict(arg)


def _sql(expression: str) -> Part:
    name = exists_attribute(Sql(expression))
    if name is not None:
        return _present(name), True
    try:
        names = sorted(required_attributes(parse_expression(expression)))
    except CesqlSyntaxError:
        return None, False
    conditions = [c for n in names for c in _present(n)]
    return (conditions or None), False


def evaluate_eventgrid(native: Mapping[str, Any] | None, event_attrs: Mapping[str, Any]) -> bool:
    """Whether an Event Grid filter passes a CloudEvent with these attributes (Azure semantics)."""
    if native is None:
        return True
    types = native.get("includedEventTypes")
    if types is not None:
        event_type = str(event_attrs.get("type", "")).lower()
        if event_type not in {t.lower() for t in types}:
            return False
    subject = event_attrs.get("subject")
    for key, test in (("subjectBeginsWith", str.startswith), ("subjectEndsWith", str.endswith)):
        wanted = native.get(key)
        if wanted and (
            subject is None or not test(canonical_string(subject).lower(), wanted.lower())
        ):
            return False
    return all(_advanced_matches(f, event_attrs) for f in native.get("advancedFilters", []))


_NUMBER_TESTS = {
    "NumberLessThan": lambda v, x: v < x,
    "NumberLessThanOrEquals": lambda v, x: v <= x,
    "NumberGreaterThan": lambda v, x: v > x,
    "NumberGreaterThanOrEquals": lambda v, x: v >= x,
}
_STRING_TESTS = {
    "StringIn": lambda v, x: v == x,
    "StringBeginsWith": lambda v, x: v.startswith(x),
    "StringEndsWith": lambda v, x: v.endswith(x),
    "StringContains": lambda v, x: x in v,
}
_NEGATED_STRING = {
    "StringNotIn": "StringIn",
    "StringNotBeginsWith": "StringBeginsWith",
    "StringNotEndsWith": "StringEndsWith",
    "StringNotContains": "StringContains",
}


def _advanced_matches(flt: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    op, key = flt["operatorType"], flt["key"]
    present = attrs.get(key) is not None
    value = attrs.get(key)
    values = flt.get("values", [flt["value"]] if "value" in flt else [])
    if op == "IsNotNull":
        return present
    if op == "IsNullOrUndefined":
        return not present
    if op in ("StringNotIn", "NumberNotIn") and not present:
        return True
    if not present:
        return False
    if op in _STRING_TESTS or op in _NEGATED_STRING:
        text = canonical_string(value).lower()
        test = _STRING_TESTS[_NEGATED_STRING.get(op, op)]
        hit = any(test(text, str(x).lower()) for x in values)
        return not hit if op in _NEGATED_STRING else hit
    if op == "BoolEquals":
        return isinstance(value, bool) and value == flt["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return op == "NumberNotIn"
    if op == "NumberIn":
        return any(value == x for x in values)
    if op == "NumberNotIn":
        return all(value != x for x in values)
    if op in _NUMBER_TESTS:
        return _NUMBER_TESTS[op](value, flt["value"])
    if op in ("NumberInRange", "NumberNotInRange"):
        inside = any(lo <= value <= hi for lo, hi in values)
        return inside if op == "NumberInRange" else not inside
    raise ValueError(f"unsupported Event Grid operator {op!r}")
