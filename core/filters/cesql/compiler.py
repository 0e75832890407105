"""Compile a CESQL syntax tree into nested Python closures (parse once, evaluate many).

Each closure takes the attribute mapping and the evaluation's error list and
returns a value; see runtime.py for how errors are recorded or fail the
evaluation. Common shapes (an attribute compared with a string literal, LIKE on
an attribute, IN over literals) get specialised closures, which is where the
speed over a tree walk comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polybus.core.filters.cesql.ast import (
    ARITHMETIC_OPS,
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

Attrs = Mapping[str, Any]
Fn = Callable[[Attrs, Errors], Value]

_PLAIN = (str, int, bool)


def compile_node(node: Node) -> Fn:
    """A closure evaluating `node`."""
    match node:
        case Literal(value):
            return lambda attrs, errs: value
        case Identifier(name):
            return _identifier(name)
        case Exists(name):
            return lambda attrs, errs: attrs.get(name) is not None
        case Unary("NOT", operand):
            inner = compile_node(operand)
            return lambda attrs, errs: not to_bool(inner(attrs, errs), errs)
        case Unary(_, operand):
            inner = compile_node(operand)
            return lambda attrs, errs: checked(-to_int(inner(attrs, errs), errs), errs)
        case Binary(op, left, right):
            return _binary(op, left, right)
        case Like(operand, pattern, negated):
            return _like(operand, pattern, negated)
        case In(operand, items, negated):
            return _in(operand, items, negated)
        case Call(name, args):
            return _call(name, args)
    raise TypeError(f"not a CESQL node: {node!r}")


def _identifier(name: str) -> Fn:
    def get(attrs: Attrs, errs: Errors) -> Value:
        value = attrs.get(name)
        if value is None:
            raise Fail("missingAttribute")
        t = type(value)
        if t is str or t is int or t is bool:
            return value  # type: ignore[no-any-return]
        return attribute_value(value)

    return get


def _binary(op: str, left: Node, right: Node) -> Fn:
    if (
        op in ("=", "!=")
        and isinstance(left, Identifier)
        and isinstance(right, Literal)
        and isinstance(right.value, str)
    ):
        return _attribute_equals(left.name, right.value, op == "=")
    lf, rf = compile_node(left), compile_node(right)
    if op == "AND":
        return lambda a, e: to_bool(lf(a, e), e) and to_bool(rf(a, e), e)
    if op == "OR":
        return lambda a, e: to_bool(lf(a, e), e) or to_bool(rf(a, e), e)
    if op == "XOR":
        return lambda a, e: to_bool(lf(a, e), e) != to_bool(rf(a, e), e)
    if op in ("=", "!="):
        return _equality(lf, rf, op == "=")
    if op in ARITHMETIC_OPS:
        return _arithmetic(op, lf, rf)
    return _ordering(op, lf, rf)


def _attribute_equals(name: str, text: str, equal: bool) -> Fn:
    def compare(attrs: Attrs, errs: Errors) -> bool:
        value = attrs.get(name)
        if value is None:
            raise Fail("missingAttribute")
        if type(value) is not str:
            value = to_str(attribute_value(value))
        return (value == text) is equal

    return compare


def _equality(lf: Fn, rf: Fn, equal: bool) -> Fn:
    def compare(attrs: Attrs, errs: Errors) -> bool:
        left, right = lf(attrs, errs), rf(attrs, errs)
        if type(left) is not type(right):  # the left operand takes the right's type
            left = cast_to(left, type(right), errs)
        return (left == right) is equal

    return compare


def _arithmetic(op: str, lf: Fn, rf: Fn) -> Fn:
    def compute(attrs: Attrs, errs: Errors) -> int:
        left = to_int(lf(attrs, errs), errs)
        right = to_int(rf(attrs, errs), errs)
        if op == "+":
            return checked(left + right, errs)
        if op == "-":
            return checked(left - right, errs)
        if op == "*":
            return checked(left * right, errs)
        if op == "/":
            return divide(left, right, errs)
        return modulo(left, right, errs)

    return compute


def _ordering(op: str, lf: Fn, rf: Fn) -> Fn:
    def compare(attrs: Attrs, errs: Errors) -> bool:
        left = to_int(lf(attrs, errs), errs)
        right = to_int(rf(attrs, errs), errs)
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        return left >= right

    return compare


def _like(operand: Node, pattern: str, negated: bool) -> Fn:
    matcher = like_matcher(pattern)
    if isinstance(operand, Identifier):
        name = operand.name

        def like_attribute(attrs: Attrs, errs: Errors) -> bool:
            value = attrs.get(name)
            if value is None:
                raise Fail("missingAttribute")
            if type(value) is not str:
                value = to_str(attribute_value(value))
            return matcher(value) is not negated

        return like_attribute
    inner = compile_node(operand)
    return lambda attrs, errs: matcher(to_str(inner(attrs, errs))) is not negated


def _in(operand: Node, items: tuple[Node, ...], negated: bool) -> Fn:
    inner = compile_node(operand)
    if all(isinstance(i, Literal) for i in items):
        literals = [i.value for i in items if isinstance(i, Literal)]
        sets: dict[type, tuple[frozenset[Value], Errors]] = {}
        for target in (str, int, bool):
            errors: Errors = []
            sets[target] = (frozenset(cast_to(v, target, errors) for v in literals), errors)

        def member(attrs: Attrs, errs: Errors) -> bool:
            value = inner(attrs, errs)
            values, errors = sets[type(value)]
            if errors:
                errs.extend(errors)
            return (value in values) is not negated

        return member
    fns = [compile_node(i) for i in items]

    def member_dynamic(attrs: Attrs, errs: Errors) -> bool:
        value = inner(attrs, errs)
        target = type(value)
        found = False
        for fn in fns:
            if cast_to(fn(attrs, errs), target, errs) == value:
                found = True
        return found is not negated

    return member_dynamic


def _call(name: str, args: tuple[Node, ...]) -> Fn:
    function = resolve(name, len(args))
    if function is None:

        def missing(attrs: Attrs, errs: Errors) -> Value:
            raise Fail("missingFunction")

        return missing
    fns = [compile_node(a) for a in args]
    impl, cast_args = function.impl, function.cast_args

    def call(attrs: Attrs, errs: Errors) -> Value:
        return impl(cast_args([fn(attrs, errs) for fn in fns], errs), errs)

    return call
