"""CESQL v1, the CloudEvents SQL Expression Language: parse once, evaluate many.

    >>> from core.filters import cesql
    >>> cesql.evaluate("type LIKE 'com.shop.%' AND EXISTS subject", {"type": "com.shop.x"})
    (False, None)
    >>> expr = cesql.parse("subject = 'eu-1'")
    >>> expr.matches({"subject": "eu-1"}), expr.evaluate({})
    (True, (False, 'missingAttribute'))

Events are given as their attribute mapping (data excluded): strings, integers
and booleans, time as an RFC 3339 string. Evaluation returns the value and the
first error kind (one of `ERROR_KINDS`) or None. As a subscription filter an
expression matches only when it evaluates to boolean true without any error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polybus.core.errors import FilterError, Problem
from polybus.core.filters.cesql.ast import Call, Node, Value, unparse, zero_value
from polybus.core.filters.cesql.compiler import compile_node
from polybus.core.filters.cesql.functions import resolve
from polybus.core.filters.cesql.parser import CesqlSyntaxError, parse_expression
from polybus.core.filters.cesql.runtime import ERROR_KINDS, Fail
from polybus.core.filters.cesql.tree import walk

__all__ = [
    "ERROR_KINDS",
    "CompiledExpression",
    "evaluate",
    "evaluate_tree",
    "parse",
    "unparse",
]

Result = tuple[Value | None, str | None]


class CompiledExpression:
    """A parsed and compiled CESQL expression; `.ast` is its syntax tree."""

    __slots__ = ("_fn", "_zero", "ast", "expression", "missing_functions")

    def __init__(self, expression: str, ast: Node) -> None:
        self.expression = expression
        self.ast = ast
        self.missing_functions = tuple(_missing_functions(ast))
        self._fn = compile_node(ast)
        self._zero = _zero(ast)

    def evaluate(self, attrs: Mapping[str, Any]) -> Result:
        """(value, first error kind or None); on a failure the value is the type's zero value."""
        errs: list[str] = []
        try:
            value = self._fn(attrs, errs)
        except Fail as failure:
            errs.append(failure.kind)
            value = self._zero
        return value, (errs[0] if errs else None)

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        """True only when the expression evaluates to boolean true with no error."""
        errs: list[str] = []
        try:
            value = self._fn(attrs, errs)
        except Fail:
            return False
        return value is True and not errs

    def __repr__(self) -> str:
        return f"CompiledExpression({self.expression!r})"


def _missing_functions(node: Node) -> list[Call]:
    found: list[Call] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Call) and resolve(item.name, len(item.args)) is None:
            found.append(item)
        for child in getattr(item, "__dict__", {}).values():
            if isinstance(child, tuple):
                stack.extend(child)
            elif hasattr(child, "__dataclass_fields__"):
                stack.append(child)
    return sorted(found, key=lambda c: c.pos)


def compile_expression(expression: str) -> CompiledExpression:
    """Parse and compile; unknown functions are left to fail at evaluation (missingFunction)."""
    return CompiledExpression(expression, parse_expression(expression))


def parse(expression: str, *, path: str = "filter") -> CompiledExpression:
    """Parse and compile a filter expression, rejecting it with the position of every problem.

    Raises `FilterError` for a malformed expression and for calls of functions
    that do not exist (at subscribe time rather than as a filter that never
    matches).
    """
    if not isinstance(expression, str):
        raise FilterError(
            "invalid CESQL expression", [Problem(path, expression, "must be a string")]
        )
    try:
        compiled = compile_expression(expression)
    except CesqlSyntaxError as exc:
        raise FilterError(
            "invalid CESQL expression", [Problem(path, expression, f"parse error {_where(exc)}")]
        ) from None
    except RecursionError:  # a safety net: the parser's nesting limits should come first
        raise FilterError(
            "invalid CESQL expression", [Problem(path, expression, "nested too deeply")]
        ) from None
    if compiled.missing_functions:
        problems = [
            Problem(
                path,
                expression,
                f"missingFunction at position {c.pos}: "
                f"no function {c.name} taking {len(c.args)} argument(s)",
            )
            for c in compiled.missing_functions
        ]
        raise FilterError("invalid CESQL expression", problems)
    return compiled


def _where(exc: CesqlSyntaxError) -> str:
    return f"at position {exc.pos}: {exc.message}"


def evaluate(expression: str, event: Mapping[str, Any]) -> Result:
    """Parse and evaluate in one go; a malformed expression gives (False, "parse")."""
    try:
        compiled = compile_expression(expression)
    except (CesqlSyntaxError, RecursionError):
        return False, "parse"
    return compiled.evaluate(event)


def evaluate_tree(ast: Node, event: Mapping[str, Any]) -> Result:
    """Evaluate a syntax tree with the plain tree walker (the benchmark's baseline)."""
    errs: list[str] = []
    try:
        value = walk(ast, event, errs)
    except Fail as failure:
        errs.append(failure.kind)
        value = _zero(ast)
    return value, (errs[0] if errs else None)


def _zero(ast: Node) -> Value:
    """The zero value of the expression's type; an unknown function has no type: false."""
    if isinstance(ast, Call) and resolve(ast.name, len(ast.args)) is None:
        return False
    return zero_value(ast)
