"""Event Grid event-subscription filters, evaluated the way the service documents them.

The filter is the ARM JSON shape an event subscription carries
(learn.microsoft.com/azure/event-grid/event-filtering)::

    {"includedEventTypes": ["a", "b"], "subjectBeginsWith": "x", "subjectEndsWith": "y",
     "isSubjectCaseSensitive": false, "enableAdvancedFilteringOnArrays": false,
     "advancedFilters": [{"operatorType": "StringIn", "key": "data.color", "values": ["red"]}]}

Namespace subscriptions name the advanced filters ``filters``; both names are
accepted. Semantics: string comparisons ignore case; the values of one filter
are OR'd, the filters are AND'd; a missing key matches only NumberNotIn,
StringNotIn and IsNullOrUndefined. Limits: 25 advanced filters, 25 values in
total, 512 characters per string value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from polybus.core.errors import FilterError, Problem

EventPredicate = Callable[[Mapping[str, Any]], bool]

MAX_ADVANCED_FILTERS = 25
MAX_FILTER_VALUES = 25
MAX_STRING_VALUE = 512
_MISSING = object()

# Event Grid schema names for the CloudEvents attributes (lookups fall back to them).
_EVENTGRID_ALIASES = {"type": "eventType", "time": "eventTime", "eventtype": "eventType"}

SINGLE_VALUE_OPERATORS = frozenset(
    {
        "NumberLessThan",
        "NumberGreaterThan",
        "NumberLessThanOrEquals",
        "NumberGreaterThanOrEquals",
        "BoolEquals",
    }
)
NO_VALUE_OPERATORS = frozenset({"IsNullOrUndefined", "IsNotNull"})
MULTI_VALUE_OPERATORS = frozenset(
    {
        "NumberIn",
        "NumberNotIn",
        "NumberInRange",
        "NumberNotInRange",
        "StringContains",
        "StringNotContains",
        "StringBeginsWith",
        "StringNotBeginsWith",
        "StringEndsWith",
        "StringNotEndsWith",
        "StringIn",
        "StringNotIn",
    }
)
OPERATORS = SINGLE_VALUE_OPERATORS | NO_VALUE_OPERATORS | MULTI_VALUE_OPERATORS


def advanced_filters_of(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The advanced filters of a subscription filter (``advancedFilters`` or ``filters``)."""
    return list(spec.get("advancedFilters") or spec.get("filters") or [])


def validate_filter(spec: Mapping[str, Any] | None) -> None:
    """Raise FilterError listing every way `spec` breaks Event Grid's filter rules and limits."""
    if not spec:
        return
    problems: list[Problem] = []
    types = spec.get("includedEventTypes")
    if types is not None and (
        not isinstance(types, list) or not all(isinstance(t, str) for t in types)
    ):
        problems.append(Problem("includedEventTypes", types, "must be a list of strings"))
    for name in ("subjectBeginsWith", "subjectEndsWith"):
        value = spec.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(name, value, "must be a string"))
    filters = advanced_filters_of(spec)
    if len(filters) > MAX_ADVANCED_FILTERS:
        problems.append(
            Problem("advancedFilters", len(filters), f"at most {MAX_ADVANCED_FILTERS} filters")
        )
    total_values = 0
    for i, flt in enumerate(filters):
        where = f"advancedFilters[{i}]"
        op = flt.get("operatorType") if isinstance(flt, Mapping) else None
        if op not in OPERATORS:
            problems.append(Problem(f"{where}.operatorType", op, "unknown operator"))
            continue
        if not isinstance(flt.get("key"), str) or not flt["key"]:
            problems.append(Problem(f"{where}.key", flt.get("key"), "must be a non-empty string"))
        values = _values_of(flt)
        total_values += len(values)
        if op in MULTI_VALUE_OPERATORS and not values:
            problems.append(Problem(f"{where}.values", flt.get("values"), "must not be empty"))
        for value in values:
            if isinstance(value, str) and len(value) > MAX_STRING_VALUE:
                problems.append(
                    Problem(f"{where}.values", value[:20] + "...", "at most 512 characters")
                )
            if op.startswith("Number") and not _range_or_number(op, value):
                problems.append(Problem(f"{where}.values", value, "must be numeric"))
    if total_values > MAX_FILTER_VALUES:
        problems.append(
            Problem("advancedFilters", total_values, f"at most {MAX_FILTER_VALUES} values in total")
        )
    if problems:
        raise FilterError("invalid Event Grid filter", problems)


def _range_or_number(op: str, value: Any) -> bool:
    if op.endswith("InRange"):
        return (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(_is_number(v) for v in value)
        )
    return _is_number(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values_of(flt: Mapping[str, Any]) -> list[Any]:
    if flt.get("operatorType") in SINGLE_VALUE_OPERATORS:
        return [flt.get("value")]
    if flt.get("operatorType") in NO_VALUE_OPERATORS:
        return []
    return list(flt.get("values") or [])


def compile_subscription_filter(spec: Mapping[str, Any] | None) -> EventPredicate:
    """A predicate over an event's JSON object (CloudEvents or Event Grid schema)."""
    if not spec:
        return lambda event: True
    validate_filter(spec)
    checks: list[EventPredicate] = []
    types = spec.get("includedEventTypes")
    if types:
        wanted = frozenset(t.lower() for t in types)
        checks.append(lambda event: str(_lookup(event, "type", "")).lower() in wanted)
    case_sensitive = bool(spec.get("isSubjectCaseSensitive"))
    begins = spec.get("subjectBeginsWith") or ""
    ends = spec.get("subjectEndsWith") or ""
    if begins or ends:
        checks.append(_subject_check(begins, ends, case_sensitive))
    on_arrays = bool(spec.get("enableAdvancedFilteringOnArrays"))
    checks.extend(_advanced(flt, on_arrays) for flt in advanced_filters_of(spec))
    return lambda event: all(check(event) for check in checks)


def _subject_check(begins: str, ends: str, case_sensitive: bool) -> EventPredicate:
    if not case_sensitive:
        begins, ends = begins.lower(), ends.lower()

    def check(event: Mapping[str, Any]) -> bool:
        subject = event.get("subject")
        if not isinstance(subject, str):
            return False
        if not case_sensitive:
            subject = subject.lower()
        return subject.startswith(begins) and subject.endswith(ends)

    return check


def _lookup(event: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """The value at `key`: a top-level attribute or a dotted path into ``data``."""
    if key.startswith("data."):
        node: Any = event.get("data")
        for part in key[5:].split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node
    if key in event:
        return event[key]
    alias = _EVENTGRID_ALIASES.get(key.lower())
    if alias is not None and alias in event:
        return event[alias]
    lowered = key.lower()
    for name, value in event.items():
        if name.lower() == lowered:
            return value
    return default


def _advanced(flt: Mapping[str, Any], on_arrays: bool) -> EventPredicate:
    op: str = flt["operatorType"]
    key: str = flt["key"]
    values = _values_of(flt)
    if op == "IsNullOrUndefined":
        return lambda event: _lookup(event, key, None) is None
    if op == "IsNotNull":
        return lambda event: _lookup(event, key, None) is not None
    matches_one = _value_matcher(op, values)
    negated = "Not" in op
    missing_result = op in ("NumberNotIn", "StringNotIn")

    def check(event: Mapping[str, Any]) -> bool:
        got = _lookup(event, key)
        if got is _MISSING or got is None:
            return missing_result
        candidates: Iterable[Any] = got if (on_arrays and isinstance(got, list)) else (got,)
        if negated:  # fails when any candidate hits any value
            return not any(matches_one(c) for c in candidates)
        return any(matches_one(c) for c in candidates)

    return check


def _value_matcher(op: str, values: Sequence[Any]) -> Callable[[Any], bool]:
    """Whether one event value hits any filter value (before negation)."""
    if op in ("NumberIn", "NumberNotIn"):
        numbers = frozenset(float(v) for v in values)
        return lambda got: _number(got) in numbers
    if op in ("NumberInRange", "NumberNotInRange"):
        ranges = [(float(lo), float(hi)) for lo, hi in values]
        return lambda got: (
            (n := _number(got)) is not None and any(lo <= n <= hi for lo, hi in ranges)
        )
    if op.startswith("Number"):
        bound = float(values[0])
        compare: Callable[[float], bool] = {
            "NumberLessThan": lambda n: n < bound,
            "NumberGreaterThan": lambda n: n > bound,
            "NumberLessThanOrEquals": lambda n: n <= bound,
            "NumberGreaterThanOrEquals": lambda n: n >= bound,
        }[op]
        return lambda got: (n := _number(got)) is not None and compare(n)
    if op == "BoolEquals":
        want = values[0]
        return lambda got: isinstance(got, bool) and got is bool(want)
    texts = tuple(str(v).lower() for v in values)
    test: Callable[[str, str], bool] = {
        "Contains": lambda s, v: v in s,
        "BeginsWith": str.startswith,
        "EndsWith": str.endswith,
        "In": lambda s, v: s == v,
    }[op.removeprefix("String").removeprefix("Not")]
    return lambda got: (s := _string(got)) is not None and any(test(s, v) for v in texts)


def _number(got: Any) -> float | None:
    if isinstance(got, bool) or not isinstance(got, int | float):
        return None
    return float(got)


def _string(got: Any) -> str | None:
    if isinstance(got, bool):
        return "true" if got else "false"
    if isinstance(got, str | int | float):
        return str(got).lower()
    return None
