"""Lexer and recursive-descent parser for CESQL v1.

Precedence, loosest first: OR, XOR, AND, NOT, comparisons (``= != <> < <= > >=``,
``[NOT] LIKE``, ``[NOT] IN``), ``+ -``, ``* / %``, unary minus, then literals,
identifiers, ``EXISTS``, function calls and parentheses. Binary operators
associate to the left. Keywords, function names and identifiers are
case-insensitive (identifiers are read in lower case, as attribute names are).

Nesting is bounded so no input can exhaust the interpreter's stack here or in
the compiler: at most `MAX_NESTING` levels of parentheses, calls, IN sets,
NOT and unary minus, and a syntax tree at most `MAX_DEPTH` nodes deep
(operator chains count). Beyond either the error names the position.
"""

from __future__ import annotations

from dataclasses import dataclass

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
)

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_NESTING = 32
MAX_DEPTH = 200

_KEYWORDS = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS", "TRUE", "FALSE"})
_TWO_CHAR_OPS = ("!=", "<>", "<=", ">=")
_ONE_CHAR_OPS = "=<>+-*/%(),"
_WHITESPACE = " \t\n\r"
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class CesqlSyntaxError(Exception):
    """A malformed expression; `pos` is the 0-based offset of the offending text."""

    def __init__(self, pos: int, message: str) -> None:
        self.pos = pos
        self.message = message
        super().__init__(f"parse error at position {pos}: {message}")


@dataclass(frozen=True)
class Token:
    """One lexical token: kind is INT, STR, WORD, OP or EOF."""

    kind: str
    text: str
    pos: int
    value: str | int = ""


def tokenize(source: str) -> list[Token]:
    """Split an expression into tokens, ending with an EOF token."""
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in "'\"":
            i = _string(source, i, tokens)
        elif ch in _WORD_CHARS:
            start = i
            while i < n and source[i] in _WORD_CHARS:
                i += 1
            word = source[start:i]
            if word.isdigit() and len(word.lstrip("0")) > 10:
                raise CesqlSyntaxError(start, "integer literal is outside the 32-bit range")
            if word.isdigit():
                tokens.append(Token("INT", word, start, int(word)))
            else:
                tokens.append(Token("WORD", word, start))
        elif source[i : i + 2] in _TWO_CHAR_OPS:
            tokens.append(Token("OP", source[i : i + 2], i))
            i += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(Token("OP", ch, i))
            i += 1
        else:
            raise CesqlSyntaxError(i, f"unexpected character {ch!r}")
    tokens.append(Token("EOF", "", n))
    return tokens


def _string(source: str, start: int, tokens: list[Token]) -> int:
    quote = source[start]
    out: list[str] = []
    i, n = start + 1, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] == quote:
            out.append(quote)
            i += 2
        elif ch == quote:
            tokens.append(Token("STR", source[start : i + 1], start, "".join(out)))
            return i + 1
        else:
            out.append(ch)
            i += 1
    raise CesqlSyntaxError(start, "unterminated string literal")


def parse_expression(source: str) -> Node:
    """The syntax tree of `source`; raises CesqlSyntaxError with the position."""
    parser = _Parser(tokenize(source))
    node = parser.expression()
    tok = parser.peek()
    if tok.kind != "EOF":
        raise CesqlSyntaxError(tok.pos, f"unexpected {tok.text!r} after the expression")
    _check_depth(node)
    return node


def _check_depth(root: Node) -> None:
    """Refuse a tree deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            pos = getattr(node, "pos", 0)
            raise CesqlSyntaxError(pos, f"expression nested deeper than {MAX_DEPTH} levels")
        for child in vars(node).values():
            if isinstance(child, tuple):
                stack.extend((item, depth + 1) for item in child)
            elif hasattr(child, "__dataclass_fields__"):
                stack.append((child, depth + 1))


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.nesting = -1  # the whole expression is level 0

    def enter(self) -> None:
        """One level deeper; CesqlSyntaxError beyond MAX_NESTING."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise CesqlSyntaxError(
                self.peek().pos, f"expression nested deeper than {MAX_NESTING} levels"
            )

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def keyword(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "WORD" and tok.text.upper() == word

    def op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "OP" and tok.text in ops

    def expect_op(self, op: str, what: str) -> Token:
        tok = self.next()
        if tok.kind != "OP" or tok.text != op:
            found = "end of expression" if tok.kind == "EOF" else repr(tok.text)
            raise CesqlSyntaxError(tok.pos, f"expected {what}, found {found}")
        return tok

    def expression(self) -> Node:
        self.enter()
        node = self.logical(0)
        self.nesting -= 1
        return node

    def logical(self, level: int) -> Node:
        word = ("OR", "XOR", "AND")[level]
        below = (lambda: self.logical(level + 1)) if level < 2 else self.negation
        node = below()
        while self.keyword(word):
            tok = self.next()
            node = Binary(word, node, below(), tok.pos)
        return node

    def negation(self) -> Node:
        if self.keyword("NOT"):
            tok = self.next()
            self.enter()
            node = Unary("NOT", self.negation(), tok.pos)
            self.nesting -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        while True:
            tok = self.peek()
            if self.op("=", "!=", "<>", "<", "<=", ">", ">="):
                self.next()
                op = "!=" if tok.text == "<>" else tok.text
                node = Binary(op, node, self.additive(), tok.pos)
                continue
            negated = self.keyword("NOT") and (self.keyword("LIKE", 1) or self.keyword("IN", 1))
            if negated:
                self.next()
            if self.keyword("LIKE"):
                self.next()
                pattern = self.next()
                if pattern.kind != "STR":
                    raise CesqlSyntaxError(pattern.pos, "LIKE needs a string literal pattern")
                node = Like(node, str(pattern.value), negated, tok.pos)
            elif self.keyword("IN"):
                self.next()
                node = In(node, self.set_items(), negated, tok.pos)
            else:
                return node

    def set_items(self) -> tuple[Node, ...]:
        self.expect_op("(", "'(' to open the IN set")
        items = [self.expression()]
        while self.op(","):
            self.next()
            items.append(self.expression())
        self.expect_op(")", "')' to close the IN set")
        return tuple(items)

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.op("+", "-"):
            tok = self.next()
            node = Binary(tok.text, node, self.multiplicative(), tok.pos)
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.op("*", "/", "%"):
            tok = self.next()
            node = Binary(tok.text, node, self.unary(), tok.pos)
        return node

    def unary(self) -> Node:
        if self.op("-", "+"):
            tok = self.next()
            sign = -1 if tok.text == "-" else 1
            if self.peek().kind == "INT":  # a signed integer literal
                return self.integer(self.next(), sign, tok.pos)
            if sign == 1:
                raise CesqlSyntaxError(tok.pos, "'+' must be followed by digits")
            self.enter()
            node = Unary("-", self.unary(), tok.pos)
            self.nesting -= 1
            return node
        return self.primary()

    def integer(self, tok: Token, sign: int, pos: int) -> Literal:
        value = sign * int(tok.value)
        if not INT32_MIN <= value <= INT32_MAX:
            raise CesqlSyntaxError(pos, f"integer literal {value} is outside the 32-bit range")
        return Literal(value, pos)

    def primary(self) -> Node:
        tok = self.next()
        if tok.kind == "INT":
            return self.integer(tok, 1, tok.pos)
        if tok.kind == "STR":
            return Literal(str(tok.value), tok.pos)
        if tok.kind == "OP" and tok.text == "(":
            node = self.expression()
            self.expect_op(")", "')' to close the parenthesis")
            return node
        if tok.kind == "WORD":
            return self.word(tok)
        found = "end of expression" if tok.kind == "EOF" else repr(tok.text)
        raise CesqlSyntaxError(tok.pos, f"expected a value, found {found}")

    def word(self, tok: Token) -> Node:
        upper = tok.text.upper()
        if upper in ("TRUE", "FALSE"):
            return Literal(upper == "TRUE", tok.pos)
        if upper == "EXISTS":
            name = self.next()
            if name.kind != "WORD" or name.text.upper() in _KEYWORDS:
                raise CesqlSyntaxError(name.pos, "EXISTS needs an attribute name")
            return Exists(self.attribute_name(name), tok.pos)
        if upper in _KEYWORDS:
            raise CesqlSyntaxError(tok.pos, f"unexpected keyword {tok.text!r}")
        if self.op("("):
            return self.call(tok)
        return Identifier(self.attribute_name(tok), tok.pos)

    def attribute_name(self, tok: Token) -> str:
        if "_" in tok.text:
            raise CesqlSyntaxError(tok.pos, f"attribute names are [a-z0-9]+, not {tok.text!r}")
        return tok.text.lower()

    def call(self, tok: Token) -> Call:
        if not tok.text[0].isalpha() or any(c.isdigit() for c in tok.text):
            raise CesqlSyntaxError(tok.pos, f"invalid function name {tok.text!r}")
        self.next()  # "("
        args: list[Node] = []
        if not self.op(")"):
            args.append(self.expression())
            while self.op(","):
                self.next()
                args.append(self.expression())
        self.expect_op(")", f"')' to close the call of {tok.text}")
        return Call(tok.text.upper(), tuple(args), tok.pos)
