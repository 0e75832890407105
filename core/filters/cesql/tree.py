"""A plain tree-walking CESQL evaluator: the baseline the compiled closures are measured against.

Same semantics as compiler.py, one recursive function over the syntax tree, no
specialisation. The conformance suite runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polybus.core.filters.cesql.ast import (
    Binary,
    Call,
    Exists,
    Identifier,
    In,
    Like,
    Literal,
    Node,
    Unary,
    Value,
)
from polybus.core.filters.cesql.functions import resolve
from polybus.core.filters.cesql.runtime import (
    Errors,
    Fail,
    attribute_value,
    cast_to,
    checked,
    divide,
    like_matcher,
    modulo,
    to_bool,
    to_int,
    to_str,
)


def walk(node: Node, attrs: Mapping[str, Any], errs: Errors) -> Value:
    """Evaluate `node` by walking the tree; raises Fail like the compiled form."""
    match node:
        case Literal(value):
            return value
        case Identifier(name):
            found = attrs.get(name)
            if found is None:
                raise Fail("missingAttribute")
            return attribute_value(found)
        case Exists(name):
            return attrs.get(name) is not None
        case Unary("NOT", operand):
            return not to_bool(walk(operand, attrs, errs), errs)
        case Unary(_, operand):
            return checked(-to_int(walk(operand, attrs, errs), errs), errs)
        case Binary(op, left, right):
            return _binary(op, left, right, attrs, errs)
        case Like(operand, pattern, negated):
            text = to_str(walk(operand, attrs, errs))
            return like_matcher(pattern)(text) is not negated
        case In(operand, items, negated):
            value = walk(operand, attrs, errs)
            found = False
            for item in items:
                if cast_to(walk(item, attrs, errs), type(value), errs) == value:
                    found = True
            return found is not negated
        case Call(name, args):
            function = resolve(name, len(args))
            if function is None:
                raise Fail("missingFunction")
            values = [walk(a, attrs, errs) for a in args]
            return function.impl(function.cast_args(values, errs), errs)
    raise TypeError(f"not a CESQL node: {node!r}")


def _binary(op: str, left: Node, right: Node, attrs: Mapping[str, Any], errs: Errors) -> Value:
    if op == "AND":
        return to_bool(walk(left, attrs, errs), errs) and to_bool(walk(right, attrs, errs), errs)
    if op == "OR":
        return to_bool(walk(left, attrs, errs), errs) or to_bool(walk(right, attrs, errs), errs)
    if op == "XOR":
        return to_bool(walk(left, attrs, errs), errs) != to_bool(walk(right, attrs, errs), errs)
    if op in ("=", "!="):
        lv, rv = walk(left, attrs, errs), walk(right, attrs, errs)
        if type(lv) is not type(rv):
            lv = cast_to(lv, type(rv), errs)
        return (lv == rv) is (op == "=")
    a = to_int(walk(left, attrs, errs), errs)
    b = to_int(walk(right, attrs, errs), errs)
    match op:
        case "+":
            return checked(a + b, errs)
        case "-":
            return checked(a - b, errs)
        case "*":
            return checked(a * b, errs)
        case "/":
            return divide(a, b, errs)
        case "%":
            return modulo(a, b, errs)
        case "<":
            return a < b
        case "<=":
            return a <= b
        case ">":
            return a > b
    return a >= b
