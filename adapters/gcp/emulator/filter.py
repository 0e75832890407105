"""The Pub/Sub subscription filter language, parsed and compiled to a predicate.

Grammar as documented at cloud.google.com/pubsub/docs/subscription-message-filter
(reference: google-cloud-go pubsub/pstest/filtering.go and its test vectors)::

    filter := term { AND term } | term { OR term }   (mixing needs parentheses)
    term   := [ NOT | - ] factor
    factor := "(" filter ")"
            | attributes:KEY                          present
            | attributes.KEY = "value"                present and equal
            | attributes.KEY != "value"               missing or different
            | hasPrefix(attributes.KEY, "prefix")     present and starts with

KEY is ``[A-Za-z0-9_-]+`` or a quoted string; values are quoted strings
(double or single quotes, backslash escapes); matching is case-sensitive. A
filter is at most 256 bytes. An empty filter matches every message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Predicate = Callable[[Mapping[str, str]], bool]

MAX_FILTER_BYTES = 256

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|[=:(),.\-])
      | (?P<word>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)
    )""",
    re.VERBOSE,
)
_KEY_WORD = re.compile(r"[A-Za-z0-9_-]+")


class FilterSyntaxError(ValueError):
    """The filter does not follow the Pub/Sub filter grammar."""


def compile_pubsub_filter(text: str) -> Predicate:
    """A predicate over a message's attributes; raises FilterSyntaxError when malformed."""
    if len(text.encode("utf-8")) > MAX_FILTER_BYTES:
        raise FilterSyntaxError(f"filter is longer than {MAX_FILTER_BYTES} bytes")
    if not text.strip():
        return _always
    parser = _Parser(_tokenize(text))
    predicate = parser.parse_filter()
    extra = parser.peek()
    if extra is not None:
        raise FilterSyntaxError(f"unexpected {extra[1]!r} after the expression")
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterSyntaxError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: m.group(1), body)


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterSyntaxError("unexpected end of filter")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        kind, got = self.take()
        if got != value or kind == "string":
            raise FilterSyntaxError(f"expected {value!r}, got {got!r}")

    def parse_filter(self) -> Predicate:
        terms = [self.parse_term()]
        connective: str | None = None
        while self.peek() in (("word", "AND"), ("word", "OR")):
            word = self.take()[1]
            if connective is not None and word != connective:
                raise FilterSyntaxError("mixing AND and OR needs parentheses")
            connective = word
            terms.append(self.parse_term())
        if len(terms) == 1:
            return terms[0]
        preds = tuple(terms)
        if connective == "AND":
            return lambda attrs: all(p(attrs) for p in preds)
        return lambda attrs: any(p(attrs) for p in preds)

    def parse_term(self) -> Predicate:
        token = self.peek()
        if token in (("word", "NOT"), ("op", "-")):
            self.take()
            inner = self.parse_factor()
            return lambda attrs: not inner(attrs)
        return self.parse_factor()

    def parse_factor(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            inner = self.parse_filter()
            self.expect(")")
            return inner
        if (kind, value) == ("word", "hasPrefix"):
            self.expect("(")
            key = self.parse_member()
            self.expect(",")
            prefix = self.parse_string()
            self.expect(")")
            return _has_prefix(key, prefix)
        if (kind, value) == ("word", "attributes"):
            kind, op = self.take()
            if (kind, op) == ("op", ":"):
                return _present(self.parse_key())
            if (kind, op) == ("op", "."):
                key = self.parse_key()
                kind, op = self.take()
                if kind == "op" and op in ("=", "!="):
                    expected = self.parse_string()
                    return _equals(key, expected) if op == "=" else _not_equals(key, expected)
                raise FilterSyntaxError(f"expected '=' or '!=' after attributes.{key}, got {op!r}")
            raise FilterSyntaxError(f"expected ':' or '.' after 'attributes', got {op!r}")
        raise FilterSyntaxError(f"unexpected {value!r}; filters test attributes only")

    def parse_member(self) -> str:
        self.expect("attributes")
        self.expect(".")
        return self.parse_key()

    def parse_key(self) -> str:
        kind, value = self.take()
        if kind == "string":
            return _unquote(value)
        if kind == "word" and _KEY_WORD.fullmatch(value):
            return value
        raise FilterSyntaxError(f"expected an attribute key, got {value!r}")

    def parse_string(self) -> str:
        kind, value = self.take()
        if kind != "string":
            raise FilterSyntaxError(f"expected a quoted string, got {value!r}")
        return _unquote(value)


def _always(attrs: Mapping[str, str]) -> bool:
    return True


def _present(key: str) -> Predicate:
    return lambda attrs: key in attrs


def _equals(key: str, expected: str) -> Predicate:
    return lambda attrs: attrs.get(key) == expected


def _not_equals(key: str, expected: str) -> Predicate:
    return lambda attrs: attrs.get(key) != expected


def _has_prefix(key: str, prefix: str) -> Predicate:
    def match(attrs: Mapping[str, str]) -> bool:
        value = attrs.get(key)
        return value is not None and value.startswith(prefix)

    return match
