"""Compile a portable filter to an Amazon EventBridge event pattern, and evaluate patterns.

The aws adapter publishes a CloudEvent with ``source`` as the envelope's
source, ``type`` as its detail-type and the whole structured-JSON event as
``detail``. So `type` maps to ``detail-type``, `source` to ``source`` and any
other attribute A to ``detail.A``; integer extensions are JSON numbers there and
booleans JSON booleans, while the context attributes are always strings.

Mapped natively (docs: eb-event-patterns-content-based-filtering.html): exact
values, ``prefix``, ``suffix``, ``anything-but`` (values, prefix, suffix),
``exists``, ``equals-ignore-case`` (``LOWER(a) = 'x'``), ``numeric``
(``a > 5``, broadened to every string too: "7" is a string that CESQL casts)
and ``$or``. What a pattern cannot say exactly stays in the residual; a pattern
over 2,048 characters drops conjuncts until it fits.

`compile_filter` is the native compiler the plugin registers; `event_pattern`
turns its output into the rule's EventPattern text. A rule needs a non-empty
pattern, so "pass everything" (native None) becomes
``{"source": [{"prefix": ""}]}``: every event has a source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from polybus.core.filters.cesql.ast import (
    Binary,
    Call,
    Exists,
    Identifier,
    Literal,
    required_attributes,
)
from polybus.core.filters.cesql.lowering import exists_attribute
from polybus.core.filters.cesql.parser import CesqlSyntaxError, parse_expression
from polybus.core.filters.dialects import All, AnyOf, Exact, Filter, Not, Prefix, Sql, Suffix
from polybus.core.filters.native import Compiled, conjuncts, normalize, residual_of

MAX_PATTERN_CHARS = 2048
#: The rule pattern that passes every event (a rule's pattern must not be empty).
MATCH_ALL: dict[str, Any] = {"source": [{"prefix": ""}]}
#: Attributes that are JSON strings in every event (the CloudEvents context attributes).
STRING_ATTRIBUTES = frozenset(
    {"id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema"}
)
_CANONICAL_INT = re.compile(r"(0|-?[1-9][0-9]*)\Z")
_NUMERIC_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "="}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}

Pattern = dict[str, Any]
Part = tuple[Pattern | None, bool]  # (pattern or None for "everything", exact?)


def field_of(attribute: str) -> tuple[str, ...]:
    """Where an attribute sits in the envelope."""
    if attribute == "type":
        return ("detail-type",)
    if attribute == "source":
        return ("source",)
    return ("detail", attribute)


def envelope_of(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The EventBridge envelope the aws adapter produces for an event with these attributes."""
    return {"source": attrs.get("source"), "detail-type": attrs.get("type"), "detail": dict(attrs)}


def pattern_size(pattern: Pattern) -> int:
    """Characters of the pattern as JSON (compact separators, as the adapter should send it)."""
    return len(json.dumps(pattern, separators=(",", ":")))


def compile_filter(flt: Filter | None) -> Compiled[Pattern]:
    """The event pattern (None: everything passes) and the residual for the client."""
    if flt is None:
        return Compiled(None, None)
    parts = conjuncts(normalize(flt))
    pattern, enforced = _conjoin(parts, frozenset())
    left = [part for part, done in zip(parts, enforced, strict=True) if not done]
    return Compiled(pattern or None, residual_of(flt, left, len(parts)))


# The old name, still imported by cli/filter.py and tests/filters/test_native_through_emulators.py.
to_eventbridge = compile_filter


def event_pattern(flt: Filter | None) -> tuple[str, Filter | None]:
    """The rule's event pattern (JSON text) and the residual filter for the client.

    A pattern longer than AWS's 2,048 characters falls back to MATCH_ALL,
    leaving the whole filter to the client.
    """
    compiled = compile_filter(flt)
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


def _conjoin(parts: list[Filter], present: frozenset[str]) -> tuple[Pattern, list[bool]]:
    """One pattern for all parts, and for each part whether the pattern enforces it exactly.

    Parts that collide on a field or would push the pattern over 2,048
    characters are left out (not enforced). An ``EXISTS a`` part is enforced
    anyway when another matcher on ``a`` already requires it to be present.
    """
    known = present | {a for p in parts if (a := exists_attribute(p))}
    compiled = [_compile(p, known) for p in parts]
    order = sorted(range(len(parts)), key=lambda i: _rank(parts[i], compiled[i]))
    pattern: Pattern = {}
    enforced = [False] * len(parts)
    for i in order:
        native, exact = compiled[i]
        if native is None:
            enforced[i] = exact
            continue
        merged = _merge(pattern, native)
        if merged is not None and pattern_size(merged) <= MAX_PATTERN_CHARS:
            pattern, enforced[i] = merged, exact
        else:
            name = exists_attribute(parts[i])
            enforced[i] = name is not None and _requires_presence(pattern, field_of(name))
    return pattern, enforced


def _rank(part: Filter, compiled: Part) -> tuple[int, int, int]:
    native, exact = compiled
    is_exists = exists_attribute(part) is not None
    return (int(is_exists), 0 if exact else 1, pattern_size(native) if native else 0)


def _requires_presence(pattern: Pattern, path: tuple[str, ...]) -> bool:
    node: Any = pattern
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return isinstance(node, list) and all(
        not (isinstance(m, dict) and m.get("exists") is False) for m in node
    )


def _compile(flt: Filter, present: frozenset[str] = frozenset()) -> Part:
    match flt:
        case Exact(a, v):
            return _field(a, _exact_values(a, v))
        case Prefix(a, v):
            return _affix(a, v, "prefix")
        case Suffix(a, v):
            return _affix(a, v, "suffix")
        case Not(inner):
            return _negation(inner, present)
        case All(filters):
            pattern, enforced = _conjoin(list(filters), present)
            return (pattern or None), all(enforced)
        case AnyOf(filters):
            return _disjunction(filters)
        case Sql(expression):
            return _sql(expression)
    raise TypeError(f"not a filter: {flt!r}")


def _field(attribute: str, matchers: list[Any] | None, exact: bool = True) -> Part:
    if matchers is None:
        return _field(attribute, [{"exists": True}], False)
    path = field_of(attribute)
    pattern: Any = matchers
    for key in reversed(path):
        pattern = {key: pattern}
    return pattern, exact


def _exact_values(attribute: str, value: str) -> list[Any]:
    values: list[Any] = [value]
    if attribute not in STRING_ATTRIBUTES:
        if _CANONICAL_INT.match(value):
            values.append(int(value))
        if value in ("true", "false"):
            values.append(value == "true")
    return values


def _affix(attribute: str, value: str, kind: str) -> Part:
    """prefix/suffix; exact unless an integer's canonical string could match too."""
    matchers: list[Any] = [{kind: value}]
    if attribute in STRING_ATTRIBUTES:
        return _field(attribute, matchers)
    if re.fullmatch(r"-?[0-9]*", value) or (kind == "suffix" and value[-1:].isdigit()):
        return _field(attribute, None)
    for flag in (True, False):
        text = "true" if flag else "false"
        if text.startswith(value) if kind == "prefix" else text.endswith(value):
            matchers.append(flag)
    return _field(attribute, matchers)


def _negation(inner: Filter, present: frozenset[str]) -> Part:
    """NOT of one attribute test: anything-but for string attributes, exists:false."""
    name = exists_attribute(inner)
    if name is not None:
        return _field(name, [{"exists": False}])
    match inner:
        case Exact(a, v) if a in STRING_ATTRIBUTES:
            but: Any = [v]
        case Prefix(a, v) if a in STRING_ATTRIBUTES:
            but = {"prefix": v}
        case Suffix(a, v) if a in STRING_ATTRIBUTES:
            but = {"suffix": v}
        case _:
            return None, False
    present_part, _ = _field(a, [{"anything-but": but}])
    if a in present or a in ("id", "source", "type", "specversion"):
        return present_part, True
    missing, _ = _field(a, [{"exists": False}])
    return {"$or": [present_part, missing]}, True


def _disjunction(filters: tuple[Filter, ...]) -> Part:
    if not filters:
        return None, False  # matches nothing: no pattern says that; the residual does
    parts = [_compile(f) for f in filters]
    if any(native is None for native, _ in parts):
        return None, False
    natives = [native for native, _ in parts if native is not None]
    exact = all(e for _, e in parts)
    same = _single_field(natives)
    if same is not None:
        path, lists = same
        return _field_path(path, [m for matchers in lists for m in matchers]), exact
    return {"$or": natives}, exact


def _single_field(patterns: list[Pattern]) -> tuple[tuple[str, ...], list[list[Any]]] | None:
    """When every pattern tests one and the same field: its path and matcher lists."""
    paths, lists = set(), []
    for pattern in patterns:
        path: tuple[str, ...] = ()
        node: Any = pattern
        while isinstance(node, dict) and len(node) == 1 and "$or" not in node:
            ((key, node),) = node.items()
            path += (key,)
        if not isinstance(node, list):
            return None
        paths.add(path)
        lists.append(node)
    if len(paths) != 1:
        return None
    return paths.pop(), lists


def _field_path(path: tuple[str, ...], matchers: list[Any]) -> Pattern:
    pattern: Any = matchers
    for key in reversed(path):
        pattern = {key: pattern}
    return pattern  # type: ignore[no-any-return]


def _merge(left: Pattern, right: Pattern) -> Pattern | None:
    """Both patterns at once, or None when they test the same field (no AND within a field)."""
    merged = dict(left)
    for key, value in right.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            inner = _merge(merged[key], value)
            if inner is None:
                return None
            merged[key] = inner
        else:
            return None
    return merged


def _sql(expression: str) -> Part:
    """Opaque CESQL: EXISTS, LOWER/UPPER(a) = 'x', a <op> n; otherwise 'attributes present'."""
    try:
        ast = parse_expression(expression)
    except CesqlSyntaxError:
        return None, False
    match ast:
        case Exists(name):
            return _field(name, [{"exists": True}])
        case Binary("=", Call("LOWER", (Identifier(name),)), Literal(str() as v)):
            if v == v.lower():
                return _ignore_case(name, v)
        case Binary(op, Identifier(name), Literal(int() as n)) if op in _NUMERIC_OPS:
            return _numeric(name, op, n)
        case Binary(op, Literal(int() as n), Identifier(name)) if op in _NUMERIC_OPS:
            return _numeric(name, _MIRRORED[op], n)
    names = sorted(required_attributes(ast))
    pattern: Pattern = {}
    for name in names:
        native, _ = _field(name, [{"exists": True}])
        merged = _merge(pattern, native) if native else None
        pattern = merged if merged is not None else pattern
    return (pattern or None), False


def _ignore_case(name: str, value: str) -> Part:
    """LOWER(a) = 'x' (x in lower case): equals-ignore-case, exact for string attributes."""
    matchers: list[Any] = [{"equals-ignore-case": value}]
    if name in STRING_ATTRIBUTES:
        return _field(name, matchers)
    # an integer or boolean extension is compared as its canonical string
    return _field(name, [*matchers, {"numeric": [">", -(2**53)]}, True, False], False)


def _numeric(name: str, op: str, number: int) -> Part:
    """a <op> n casts a to Integer: numbers compare natively; strings and booleans go to the residual."""
    if name in STRING_ATTRIBUTES:
        return _field(name, [{"prefix": ""}], False)
    matchers: list[Any] = [{"numeric": [op, number]}, {"prefix": ""}]
    for flag in (True, False):
        if _compare(int(flag), op, number):
            matchers.append(flag)
    return _field(name, matchers, False)


def _compare(value: float, op: str, number: float) -> bool:
    return {
        "<": value < number,
        "<=": value <= number,
        ">": value > number,
        ">=": value >= number,
        "=": value == number,
    }[op]


def evaluate_eventbridge(pattern: Mapping[str, Any] | None, envelope: Mapping[str, Any]) -> bool:
    """Whether an EventBridge event pattern matches an envelope (AWS semantics, per its docs).

    Every field of the pattern must match (fields AND'ed, the values of one
    field OR'ed); ``$or`` needs one alternative; a missing field matches only
    ``{"exists": false}``; an array field matches when any element does.
    """
    if pattern is None:
        return True
    for key, expected in pattern.items():
        if key == "$or":
            if not any(evaluate_eventbridge(alt, envelope) for alt in expected):
                return False
            continue
        present = isinstance(envelope, Mapping) and key in envelope
        value = envelope.get(key) if present else None
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not evaluate_eventbridge(expected, value):
                return False
        elif not _field_matches(expected, present, value):
            return False
    return True


def _field_matches(matchers: list[Any], present: bool, value: Any) -> bool:
    if not present:
        return any(isinstance(m, Mapping) and m.get("exists") is False for m in matchers)
    values = value if isinstance(value, list) else [value]
    return any(_matches(m, v) for m in matchers for v in values)


def _matches(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return _same(matcher, value)
    ((kind, arg),) = matcher.items()
    if kind == "exists":
        return bool(arg)
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if kind == "anything-but":
        if isinstance(arg, Mapping):
            return not _matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_same(x, value) for x in excluded)
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        ops = list(arg)
        return all(_compare(value, ops[i], ops[i + 1]) for i in range(0, len(ops), 2))
    raise ValueError(f"unsupported EventBridge matcher {kind!r}")


def _same(expected: Any, value: Any) -> bool:
    """Exact match: strings with strings, numbers numerically, booleans with booleans only."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value
