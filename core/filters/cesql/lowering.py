"""Rewrite a CESQL filter as an equivalent tree of Subscriptions API filters, for the compilers.

A CESQL filter matches when it evaluates to true *without error*, and a missing
attribute is an error that stops evaluation. So ``a = 'x' OR b = 'y'`` does not
match an event without ``a`` even when ``b`` is ``'y'``. The rewrite keeps that
exactly by tracking, for each boolean sub-expression X, two portable filters:
T(X) "evaluates to true without error" and F(X) "evaluates to false without
error"::

    T(X AND Y) = T(X) ∧ T(Y)           F(X AND Y) = F(X) ∨ (T(X) ∧ F(Y))
    T(X OR Y)  = T(X) ∨ (F(X) ∧ T(Y))  F(X OR Y)  = F(X) ∧ F(Y)
    T(NOT X)   = F(X)                  F(NOT X)   = T(X)

Leaves become `Exact`, `Prefix`, `Suffix` (``a = 's'``, ``a LIKE 'p%'``,
``a IN ('s', ...)``) or stay CESQL (`Sql`, e.g. ``EXISTS a``); the result
matches exactly the same events as the original expression.
"""

from __future__ import annotations

import re

from polybus.core.filters.cesql.ast import (
    Binary,
    Exists,
    Identifier,
    In,
    Like,
    Literal,
    Node,
    Unary,
    static_type,
    unparse,
)
from polybus.core.filters.cesql.parser import parse_expression
from polybus.core.filters.cesql.runtime import INT32_MAX, INT32_MIN, like_parts
from polybus.core.filters.dialects import All, AnyOf, Exact, Filter, Not, Prefix, Sql, Suffix

TRUE: Filter = All(())
FALSE: Filter = AnyOf(())
_CANONICAL_INT = re.compile(r"(0|-?[1-9][0-9]*)\Z")
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")


def exists(attribute: str) -> Sql:
    """The portable filter 'attribute is present' (CESQL ``EXISTS a``)."""
    return Sql(f"EXISTS {attribute}")


def exists_attribute(flt: Filter) -> str | None:
    """The attribute name when `flt` is ``EXISTS a``, else None."""
    if isinstance(flt, Sql):
        match = re.fullmatch(r"EXISTS ([a-z0-9]+)", flt.expression)
        if match:
            return match.group(1)
    return None


def lower_sql(expression: str) -> Filter:
    """An equivalent portable filter for a CESQL filter (Sql leaves where nothing simpler fits)."""
    ast = parse_expression(expression)
    if static_type(ast) != "bool":
        return Sql(expression)
    return true_of(ast)


def conjoin(filters: list[Filter]) -> Filter:
    """All of the filters, flattened and simplified."""
    out: list[Filter] = []
    for f in filters:
        if isinstance(f, All):
            out.extend(f.filters)
        elif f == FALSE:
            return FALSE
        else:
            out.append(f)
    return out[0] if len(out) == 1 else All(tuple(out))


def disjoin(filters: list[Filter]) -> Filter:
    """Any of the filters, flattened and simplified."""
    out: list[Filter] = []
    for f in filters:
        if isinstance(f, AnyOf):
            out.extend(f.filters)
        elif f == TRUE:
            return TRUE
        else:
            out.append(f)
    return out[0] if len(out) == 1 else AnyOf(tuple(out))


def negate(flt: Filter) -> Filter:
    """Not, with double negation and constants folded."""
    if isinstance(flt, Not):
        return flt.filter
    if flt == TRUE:
        return FALSE
    if flt == FALSE:
        return TRUE
    return Not(flt)


def true_of(node: Node) -> Filter:
    """T(node): the events on which the boolean expression evaluates to true without error."""
    match node:
        case Literal(bool() as value):
            return TRUE if value else FALSE
        case Binary("AND", left, right) if _boolean(left, right):
            return conjoin([true_of(left), true_of(right)])
        case Binary("OR", left, right) if _boolean(left, right):
            return disjoin([true_of(left), conjoin([false_of(left), true_of(right)])])
        case Unary("NOT", operand) if static_type(operand) == "bool":
            return false_of(operand)
    atom = _atom(node)
    if atom is not None:
        return atom[0]
    return Sql(unparse(node))


def false_of(node: Node) -> Filter:
    """F(node): the events on which the boolean expression evaluates to false without error."""
    match node:
        case Literal(bool() as value):
            return FALSE if value else TRUE
        case Binary("AND", left, right) if _boolean(left, right):
            return disjoin([false_of(left), conjoin([true_of(left), false_of(right)])])
        case Binary("OR", left, right) if _boolean(left, right):
            return conjoin([false_of(left), false_of(right)])
        case Unary("NOT", operand) if static_type(operand) == "bool":
            return true_of(operand)
    atom = _atom(node)
    if atom is not None and atom[1] is not None:
        return atom[1]
    return Sql(unparse(Unary("NOT", node)))


def _boolean(*nodes: Node) -> bool:
    return all(static_type(n) == "bool" for n in nodes)


def _atom(node: Node) -> tuple[Filter, Filter | None] | None:
    """(T, F) for a leaf on one attribute, F None when only T has a simple form."""
    match node:
        case Exists(name):
            return exists(name), negate(exists(name))
        case Binary("=" | "!=" as op, Identifier(name), Literal(str() as text)):
            # the attribute is cast to String: its canonical form is compared
            equal = Exact(name, text)
            unequal = conjoin([exists(name), negate(equal)])
            return (equal, unequal) if op == "=" else (unequal, equal)
        case Like(Identifier(name), pattern, negated):
            shape = like_shape(name, pattern)
            if shape is None:
                return None
            other = conjoin([exists(name), negate(shape)])
            return (other, shape) if negated else (shape, other)
        case In(Identifier(name), items, False) if _plain_strings(items):
            texts = [i.value for i in items if isinstance(i, Literal) and isinstance(i.value, str)]
            return disjoin([Exact(name, t) for t in texts]), None
    return None


def like_shape(name: str, pattern: str) -> Filter | None:
    """Exact / Prefix / Suffix / exists when the LIKE pattern is that simple, else None."""
    parts = like_parts(pattern)
    if "\x00_" in parts:
        return None
    if not parts:
        return Exact(name, "")
    if parts == ["\x00%"]:
        return exists(name)
    if len(parts) == 1:
        return Exact(name, parts[0])
    if len(parts) == 2 and parts[1] == "\x00%":
        return Prefix(name, parts[0])
    if len(parts) == 2 and parts[0] == "\x00%":
        return Suffix(name, parts[1])
    return None


def _plain_strings(items: tuple[Node, ...]) -> bool:
    """IN over these string literals means 'canonical string is one of them'.

    IN casts every item to the attribute's type: for an integer or boolean
    attribute a failed cast is an error (no match) and cast values, not
    canonical strings, are compared. The two readings agree when either all
    items cast and are canonical, or none could equal a canonical form.
    """
    texts = []
    for item in items:
        if not isinstance(item, Literal) or not isinstance(item.value, str):
            return False
        texts.append(item.value)
    if all(_INT_TEXT.match(t) and INT32_MIN <= int(t) <= INT32_MAX for t in texts):
        ints_ok = all(_CANONICAL_INT.match(t) for t in texts)
    else:
        ints_ok = not any(_CANONICAL_INT.match(t) for t in texts)
    if all(t.lower() in ("true", "false") for t in texts):
        bools_ok = all(t in ("true", "false") for t in texts)
    else:
        bools_ok = not any(t in ("true", "false") for t in texts)
    return ints_ok and bools_ok
