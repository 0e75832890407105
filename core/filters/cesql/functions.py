"""The CESQL v1 built-in functions, resolved by upper-case name and arity.

Arguments are cast to the parameter types first (a failed cast records a cast
error and passes the zero value). A function that meets bad input returns the
value the spec names together with a functionEvaluation (or math) error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from polybus.core.filters.cesql.ast import Value
from polybus.core.filters.cesql.runtime import (
    INT32_MAX,
    TRIM_CHARS,
    Errors,
    bool_function,
    to_bool,
    to_int,
    to_str,
)

Impl = Callable[[Sequence[Value], Errors], Value]


@dataclass(frozen=True)
class Function:
    """A built-in: fixed parameter types, an optional variadic type, the implementation."""

    params: tuple[str, ...]
    variadic: str | None
    impl: Impl

    def accepts(self, arity: int) -> bool:
        """Whether this overload takes `arity` arguments."""
        if self.variadic is None:
            return arity == len(self.params)
        return arity >= len(self.params)

    def cast_args(self, args: Sequence[Value], errs: Errors) -> list[Value]:
        """The arguments cast to the parameter types."""
        out: list[Value] = []
        for i, value in enumerate(args):
            kind = self.params[i] if i < len(self.params) else self.variadic
            if kind == "str":
                out.append(to_str(value))
            elif kind == "int":
                out.append(to_int(value, errs))
            else:
                out.append(value)
        return out


def _left(args: Sequence[Value], errs: Errors) -> Value:
    text, n = str(args[0]), int(args[1])
    if n < 0:
        errs.append("functionEvaluation")
        return text
    return text[:n]


def _right(args: Sequence[Value], errs: Errors) -> Value:
    text, n = str(args[0]), int(args[1])
    if n < 0:
        errs.append("functionEvaluation")
        return text
    return text[len(text) - n :] if n else ""


def _substring(args: Sequence[Value], errs: Errors) -> Value:
    """MySQL-style: 1-based start, negative counts from the end, 0 gives ''."""
    text, pos = str(args[0]), int(args[1])
    length = int(args[2]) if len(args) > 2 else None
    if pos == 0:
        return ""
    if abs(pos) > len(text) or (length is not None and length < 0):
        errs.append("functionEvaluation")
        return ""
    start = pos - 1 if pos > 0 else len(text) + pos
    return text[start:] if length is None else text[start : start + length]


def _abs(args: Sequence[Value], errs: Errors) -> Value:
    number = int(args[0])
    if -number > INT32_MAX:
        errs.append("math")
        return INT32_MAX
    return abs(number)


def _is_int(args: Sequence[Value], errs: Errors) -> Value:
    probe: Errors = []
    to_int(args[0], probe)
    return not probe


def _is_bool(args: Sequence[Value], errs: Errors) -> Value:
    probe: Errors = []
    to_bool(args[0], probe)
    return not probe


def _concat_ws(args: Sequence[Value], errs: Errors) -> Value:
    return str(args[0]).join(str(a) for a in args[1:])


FUNCTIONS: dict[str, tuple[Function, ...]] = {
    "LENGTH": (Function(("str",), None, lambda a, e: len(str(a[0]))),),
    "CONCAT": (Function((), "str", lambda a, e: "".join(str(x) for x in a)),),
    "CONCAT_WS": (Function(("str",), "str", _concat_ws),),
    "LOWER": (Function(("str",), None, lambda a, e: str(a[0]).lower()),),
    "UPPER": (Function(("str",), None, lambda a, e: str(a[0]).upper()),),
    "TRIM": (Function(("str",), None, lambda a, e: str(a[0]).strip(TRIM_CHARS)),),
    "LEFT": (Function(("str", "int"), None, _left),),
    "RIGHT": (Function(("str", "int"), None, _right),),
    "SUBSTRING": (
        Function(("str", "int"), None, _substring),
        Function(("str", "int", "int"), None, _substring),
    ),
    "ABS": (Function(("int",), None, _abs),),
    "INT": (Function(("any",), None, lambda a, e: to_int(a[0], e)),),
    "BOOL": (Function(("any",), None, lambda a, e: bool_function(a[0], e)),),
    "STRING": (Function(("any",), None, lambda a, e: to_str(a[0])),),
    "IS_INT": (Function(("str",), None, _is_int),),
    "IS_BOOL": (Function(("str",), None, _is_bool),),
}


def resolve(name: str, arity: int) -> Function | None:
    """The overload of `name` taking `arity` arguments, or None (a missingFunction error)."""
    for overload in FUNCTIONS.get(name, ()):
        if overload.accepts(arity):
            return overload
    return None
