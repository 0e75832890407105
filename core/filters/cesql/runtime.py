"""CESQL v1 values at run time: casts, errors, LIKE patterns and the built-in functions.

Errors follow the spec's two behaviours. A failed cast, an overflow or a
function's own error is *recorded* (appended to the evaluation's error list)
and evaluation goes on with the zero value or the function's result. A missing
attribute, a division by zero or an unknown function *fails* the evaluation:
`Fail` is raised and the whole expression yields the zero value of its type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from polybus.core.filters.cesql.ast import Value

ERROR_KINDS = (
    "parse",
    "math",
    "cast",
    "missingFunction",
    "functionEvaluation",
    "missingAttribute",
    "generic",
)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
#: The characters TRIM removes: space, tab, line feed and carriage return.
TRIM_CHARS = " \t\n\r"

Errors = list[str]


class Fail(Exception):
    """Evaluation cannot go on; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def attribute_value(value: Any) -> Value:
    """An attribute as CESQL sees it: str, int and bool as they are, anything else as a string."""
    t = type(value)
    if t is str or t is int or t is bool:
        return value  # type: ignore[no-any-return]
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)


def to_str(value: Value) -> str:
    """Cast to String (never fails)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    if t is bool:
        return "true" if value else "false"
    return str(value)


def to_int(value: Value, errs: Errors) -> int:
    """Cast to Integer; an unparsable string records a cast error and gives 0."""
    t = type(value)
    if t is int:
        return value  # type: ignore[return-value]
    if t is bool:
        return 1 if value else 0
    text = value  # a string
    if _INT_TEXT.match(text):  # type: ignore[arg-type]
        number = int(text)
        if INT32_MIN <= number <= INT32_MAX:
            return number
    errs.append("cast")
    return 0


def to_bool(value: Value, errs: Errors) -> bool:
    """Implicit cast to Boolean: 'true'/'false' in any case; integers are a cast error."""
    t = type(value)
    if t is bool:
        return value  # type: ignore[return-value]
    if t is str:
        lowered = value.lower()  # type: ignore[union-attr]
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    errs.append("cast")
    return False


def bool_function(value: Value, errs: Errors) -> bool:
    """BOOL(x): as the implicit cast, but integers are allowed (non-zero is true)."""
    if type(value) is int:
        return value != 0
    return to_bool(value, errs)


def cast_to(value: Value, target: type, errs: Errors) -> Value:
    """Cast to the Python type of another CESQL value (str, int or bool)."""
    if target is str:
        return to_str(value)
    if target is int:
        return to_int(value, errs)
    return to_bool(value, errs)


def checked(number: int, errs: Errors) -> int:
    """Clamp a result to the 32-bit range, recording a math error on overflow."""
    if INT32_MIN <= number <= INT32_MAX:
        return number
    errs.append("math")
    return INT32_MAX if number > INT32_MAX else INT32_MIN


def divide(left: int, right: int, errs: Errors) -> int:
    """Truncated division; division by zero fails the evaluation."""
    if right == 0:
        raise Fail("math")
    quotient = abs(left) // abs(right)
    return checked(-quotient if (left < 0) != (right < 0) else quotient, errs)


def modulo(left: int, right: int, errs: Errors) -> int:
    """Remainder of the truncated division (sign of the dividend)."""
    if right == 0:
        raise Fail("math")
    remainder = abs(left) % abs(right)
    return -remainder if left < 0 else remainder


def like_parts(pattern: str) -> list[str]:
    """A LIKE pattern as literal texts and wildcards; wildcards are tagged "\x00%" / "\x00_".

    A backslash before % or _ makes it literal; runs of % collapse into one.
    """
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            literal.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            if literal:
                parts.append("".join(literal))
                literal = []
            if not (ch == "%" and parts and parts[-1] == "\x00%"):
                parts.append("\x00" + ch)
        else:
            literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for a LIKE pattern: % any run, _ one character, backslash escapes them."""
    return _specialise(like_parts(pattern))


def _specialise(parts: list[str]) -> Callable[[str], bool]:
    wild = [p for p in parts if p.startswith("\x00")]
    texts = [p for p in parts if not p.startswith("\x00")]
    if not wild:
        text = texts[0] if texts else ""
        return text.__eq__
    if all(w == "\x00%" for w in wild):
        if len(parts) == 2 and parts[1] == "\x00%":
            return _startswith(parts[0])
        if len(parts) == 2 and parts[0] == "\x00%":
            return _endswith(parts[1])
        if len(parts) == 1:
            return _always
        if len(parts) == 3 and parts[0] == parts[2] == "\x00%":
            return _contains(parts[1])
    regex = "".join(
        (".*" if p == "\x00%" else ".") if p.startswith("\x00") else re.escape(p) for p in parts
    )
    compiled = re.compile(regex, re.DOTALL)
    return lambda s: compiled.fullmatch(s) is not None


def _always(_text: str) -> bool:
    return True


def _startswith(prefix: str) -> Callable[[str], bool]:
    return lambda s: s.startswith(prefix)


def _endswith(suffix: str) -> Callable[[str], bool]:
    return lambda s: s.endswith(suffix)


def _contains(needle: str) -> Callable[[str], bool]:
    return lambda s: needle in s
