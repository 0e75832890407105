"""Compile a portable filter to a Google Pub/Sub subscription filter (text plus residual).

The gcp adapter uses the CloudEvents Pub/Sub binding in binary mode: every
attribute is a message attribute ``ce-<name>`` holding its canonical string
(``content-type`` for datacontenttype). Filters (cloud.google.com/pubsub/docs/
subscription-message-filter) test attributes only: ``attributes:KEY``
(present), ``attributes.KEY = "v"``, ``!=`` (true when missing),
``hasPrefix(attributes.KEY, "p")``, NOT, AND, OR and parentheses, at most 256
bytes, case-sensitive, no suffix operator. Exact and prefix map exactly;
suffix and CESQL beyond those become "present" natively plus a residual.
Pub/Sub evaluates the filter server-side; the emulator's evaluator is
emulator/filter.py.
"""

from __future__ import annotations

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

MAX_FILTER_BYTES = 256

Part = tuple[str | None, bool]  # (filter text or None for "everything", exact?)


def key_of(attribute: str) -> str:
    """The message attribute carrying a CloudEvent attribute in binary mode."""
    return "content-type" if attribute == "datacontenttype" else f"ce-{attribute}"


def message_attributes(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The Pub/Sub message attributes the gcp adapter sends for an event with these attributes."""
    return {key_of(name): canonical_string(value) for name, value in attrs.items()}


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def compile_filter(flt: Filter | None) -> Compiled[str]:
    """The subscription filter (None: everything passes) and the residual for the client."""
    if flt is None:
        return Compiled(None, None)
    parts = conjuncts(normalize(flt))
    compiled = [_compile(p) for p in parts]
    order = sorted(range(len(parts)), key=lambda i: (not compiled[i][1], len(compiled[i][0] or "")))
    chosen: dict[int, str] = {}
    enforced = [False] * len(parts)
    for i in order:
        text, exact = compiled[i]
        if text is None:
            enforced[i] = exact
            continue
        candidate = _join("AND", [*chosen.values(), text])
        if _size(candidate) <= MAX_FILTER_BYTES:
            chosen[i] = text
            enforced[i] = exact
    left = [part for part, done in zip(parts, enforced, strict=True) if not done]
    native = _join("AND", [chosen[i] for i in sorted(chosen)]) if chosen else None
    return Compiled(native, residual_of(flt, left, len(parts)))


def _join(word: str, texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return f" {word} ".join(t if _atomic(t) else f"({t})" for t in texts)


def _atomic(text: str) -> bool:
    """True when the text needs no parentheses inside AND/OR (no top-level AND/OR)."""
    depth, in_string, i = 0, False, 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (text.startswith(" AND ", i) or text.startswith(" OR ", i)):
            return False
        i += 1
    return True


def _compile(flt: Filter) -> Part:
    match flt:
        case Exact(a, v):
            return f"attributes.{key_of(a)} = {_string(v)}", True
        case Prefix(a, v):
            return f"hasPrefix(attributes.{key_of(a)}, {_string(v)})", True
        case Suffix(a, _):
            return f"attributes:{key_of(a)}", False
        case Not(Exact(a, v)):
            return f"attributes.{key_of(a)} != {_string(v)}", True
        case Not(inner):
            text, exact = _compile(inner)
            if text is None or not exact:
                return None, False
            return (f"NOT {text}" if _atomic(text) else f"NOT ({text})"), True
        case All(filters):
            parts = [_compile(f) for f in filters]
            texts = [t for t, _ in parts if t is not None]
            exact = all(e for _, e in parts)
            return (_join("AND", texts) if texts else None), exact
        case AnyOf(filters):
            parts = [_compile(f) for f in filters]
            if not parts or any(t is None for t, _ in parts):
                return None, False
            return _join("OR", [t for t, _ in parts if t is not None]), all(e for _, e in parts)
        case Sql(expression):
            return _sql(expression)
    raise TypeError(f"not a filter: {flt!r}")


def _sql(expression: str) -> Part:
    name = exists_attribute(Sql(expression))
    if name is not None:
        return f"attributes:{key_of(name)}", True
    try:
        names = sorted(required_attributes(parse_expression(expression)))
    except CesqlSyntaxError:
        return None, False
    if not names:
        return None, False
    return _join("AND", [f"attributes:{key_of(n)}" for n in names]), False
