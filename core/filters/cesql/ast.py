"""The CESQL v1 abstract syntax tree, its static types, and printing it back to CESQL.

Nodes are frozen dataclasses; `pos` is the 0-based character offset in the
source expression, kept so errors and `filter explain` can point at the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Value = Union[str, int, bool]  # noqa: UP007 - runtime alias

#: Operators of `Binary`, as written in CESQL ("<>" is read as "!=").
LOGICAL_OPS = frozenset({"AND", "OR", "XOR"})
COMPARISON_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%"})


@dataclass(frozen=True)
class Literal:
    """A string, integer or boolean literal."""

    value: Value
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Identifier:
    """A context attribute or extension, by its lower-case name."""

    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Exists:
    """``EXISTS name``: true when the attribute is present."""

    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    """``NOT x`` (op "NOT") or ``-x`` (op "-")."""

    op: str
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """A logical, comparison or arithmetic operation."""

    op: str
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Like:
    """``x [NOT] LIKE 'pattern'``; the pattern is always a string literal."""

    operand: Node
    pattern: str
    negated: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class In:
    """``x [NOT] IN (y1, y2, ...)``."""

    operand: Node
    items: tuple[Node, ...]
    negated: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    """A function invocation; `name` is upper case."""

    name: str
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node = Union[Literal, Identifier, Exists, Unary, Binary, Like, In, Call]  # noqa: UP007

#: Return types of the built-in functions (see functions.py).
FUNCTION_TYPES = {
    "LENGTH": "int",
    "CONCAT": "str",
    "CONCAT_WS": "str",
    "LOWER": "str",
    "UPPER": "str",
    "TRIM": "str",
    "LEFT": "str",
    "RIGHT": "str",
    "SUBSTRING": "str",
    "ABS": "int",
    "INT": "int",
    "BOOL": "bool",
    "STRING": "str",
    "IS_BOOL": "bool",
    "IS_INT": "bool",
}


def static_type(node: Node) -> str | None:
    """'bool', 'int' or 'str' when known before evaluation; None for attributes."""
    match node:
        case Literal(value):
            if isinstance(value, bool):
                return "bool"
            return "int" if isinstance(value, int) else "str"
        case Identifier():
            return None
        case Unary(op):
            return "bool" if op == "NOT" else "int"
        case Binary(op):
            return "int" if op in ARITHMETIC_OPS else "bool"
        case Call(name):
            return FUNCTION_TYPES.get(name)
    return "bool"  # Exists, Like, In


def zero_value(node: Node) -> Value:
    """The value an expression of this node's type yields when evaluation fails."""
    kind = static_type(node)
    if kind == "int":
        return 0
    if kind == "str":
        return ""
    return False


def quote(text: str) -> str:
    """A CESQL string literal for `text`."""
    return "'" + text.replace("'", "\\'") + "'"


_BINDING = {"OR": 1, "XOR": 2, "AND": 3, "NOT": 4, "CMP": 5, "+": 6, "-": 6, "*": 7, "/": 7, "%": 7}


def unparse(node: Node) -> str:
    """CESQL text that parses back to an equivalent tree (parenthesised where needed)."""
    return _unparse(node, 0)


def _level(node: Node) -> int:
    match node:
        case Binary(op):
            return _BINDING["CMP"] if op in COMPARISON_OPS else _BINDING[op]
        case Like() | In():
            return _BINDING["CMP"]
        case Unary("NOT"):
            return _BINDING["NOT"]
    return 9


def _wrap(node: Node, minimum: int) -> str:
    return _unparse(node, minimum) if _level(node) >= minimum else f"({_unparse(node, 0)})"


def _unparse(node: Node, _minimum: int) -> str:
    match node:
        case Literal(value):
            if isinstance(value, bool):
                return "TRUE" if value else "FALSE"
            if isinstance(value, int):
                return str(value)
            return quote(value)
        case Identifier(name):
            return name
        case Exists(name):
            return f"EXISTS {name}"
        case Unary("NOT", operand):
            return f"NOT {_wrap(operand, _BINDING['NOT'])}"
        case Unary(_, operand):
            inner = _wrap(operand, 9)
            # "-5" would read back as the literal -5, "--5" is fine but obscure
            return f"-({inner})" if isinstance(operand, Literal) or inner[0] == "-" else f"-{inner}"
        case Binary(op, left, right):
            level = _level(node)
            # left-associative: the right operand needs a strictly tighter binding
            return f"{_wrap(left, level)} {op} {_wrap(right, level + 1)}"
        case Like(operand, pattern, negated):
            word = "NOT LIKE" if negated else "LIKE"
            return f"{_wrap(operand, _BINDING['CMP'] + 1)} {word} {quote(pattern)}"
        case In(operand, items, negated):
            word = "NOT IN" if negated else "IN"
            inner = ", ".join(_unparse(i, 0) for i in items)
            return f"{_wrap(operand, _BINDING['CMP'] + 1)} {word} ({inner})"
        case Call(name, args):
            return f"{name}({', '.join(_unparse(a, 0) for a in args)})"
    raise TypeError(f"not a CESQL node: {node!r}")


def identifiers(node: Node) -> set[str]:
    """Every attribute name the expression mentions (including under EXISTS)."""
    match node:
        case Identifier(name) | Exists(name):
            return {name}
        case Unary(_, operand):
            return identifiers(operand)
        case Binary(_, left, right):
            return identifiers(left) | identifiers(right)
        case Like(operand):
            return identifiers(operand)
        case In(operand, items):
            return identifiers(operand).union(*(identifiers(i) for i in items))
        case Call(_, args):
            return set().union(*(identifiers(a) for a in args)) if args else set()
    return set()


def required_attributes(node: Node) -> set[str]:
    """Attributes whose absence always makes evaluation fail (so the filter cannot match).

    Only attributes evaluated on every path count: the right side of AND/OR may
    be skipped, and EXISTS never fails.
    """
    match node:
        case Identifier(name):
            return {name}
        case Unary(_, operand):
            return required_attributes(operand)
        case Binary(op, left, right):
            if op in ("AND", "OR"):
                return required_attributes(left)
            return required_attributes(left) | required_attributes(right)
        case Like(operand):
            return required_attributes(operand)
        case In(operand, items):
            return required_attributes(operand).union(*(required_attributes(i) for i in items))
        case Call(name, args):
            if name not in FUNCTION_TYPES:
                return set()
            return set().union(*(required_attributes(a) for a in args)) if args else set()
    return set()
