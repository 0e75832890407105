"""The filter parsers (CESQL, the Subscriptions API dialects, parse_filter) raise only FilterError."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.errors import FilterError
from polybus.core.filters import cesql, compile_filter, parse_filter
from tests.fuzz.strategies import mutated

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CESQL = (
    "type LIKE 'com.shop.%' AND (subject IN ('a', 'b') OR NOT EXISTS region) "
    "AND ABS(seq - 10) % 3 = 1 AND UPPER(source) <> 'X' XOR -seq >= +5"
)
DIALECT = {
    "all": [
        {"exact": {"type": "com.shop.order"}},
        {"any": [{"prefix": {"subject": "eu-"}}, {"suffix": {"source": "/eu"}}]},
        {"not": {"sql": "seq > 3"}},
    ]
}
ATTRS = {"type": "com.shop.order", "subject": "eu-1", "source": "/x", "seq": 5}


def only_filter_errors(call: Any, *args: Any) -> Any:
    """Run `call`; any exception other than FilterError fails the test."""
    try:
        return call(*args)
    except FilterError:
        return None


@FUZZ
@given(source=mutated(CESQL.encode()))
def test_cesql_on_mutated_expressions(source: bytes) -> None:
    """cesql.parse raises only FilterError, and what it accepts evaluates without raising."""
    text = source.decode("utf-8", "replace")
    compiled = only_filter_errors(cesql.parse, text)
    if compiled is not None:
        compiled.matches(ATTRS)
        cesql.unparse(compiled.ast)
    cesql.evaluate(text, ATTRS)


@settings(max_examples=60, deadline=None)
@given(
    depth=st.sampled_from((34, 85, 200, 1_000, 20_000)),
    shape=st.sampled_from(("(", "NOT ", "- ", "ABS(", "x IN (", "chain")),
)
def test_cesql_deep_nesting(depth: int, shape: str) -> None:
    """85+ parentheses, long NOT/minus/call chains and operator chains are FilterErrors, not RecursionError."""
    if shape == "chain":
        text = " OR ".join(["a = 'x'"] * (depth + 200))  # chains are limited by tree depth
    elif shape in ("NOT ", "- "):
        text = shape * depth + "1 = 1"
    else:
        text = shape * depth + "1" + ")" * depth
    with pytest.raises(FilterError) as info:
        cesql.parse(text)
    exc = info.value
    assert "nested" in str(exc)
    assert cesql.evaluate(text, ATTRS) == (False, "parse")


def test_cesql_nesting_within_the_limit_is_accepted() -> None:
    """32 parentheses parse and evaluate."""
    assert cesql.parse("(" * 32 + "seq = 5" + ")" * 32).matches(ATTRS)


def test_cesql_huge_integer_literal() -> None:
    """An integer literal of thousands of digits is a range error, not int()'s ValueError."""
    with pytest.raises(FilterError) as info:
        cesql.parse("seq = " + "9" * 5000)
    exc = info.value
    assert "32-bit range" in str(exc)


json_specs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(("exact", "prefix", "suffix", "all", "any", "not", "sql", "type", "X")),
            inner,
            max_size=2,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(spec=json_specs)
def test_parse_filter_on_any_json(spec: Any) -> None:
    """parse_filter raises only FilterError for any JSON value; what it accepts compiles and runs."""
    flt = only_filter_errors(parse_filter, spec)
    if flt is not None:
        compile_filter(flt)(ATTRS)


@FUZZ
@given(source=mutated(json.dumps(DIALECT).encode()))
def test_parse_filter_on_mutated_dialect_json(source: bytes) -> None:
    """Mutated Subscriptions API JSON: decoding may fail, parse_filter raises only FilterError."""
    try:
        spec = json.loads(source)
    except (ValueError, RecursionError):
        return
    only_filter_errors(parse_filter, spec)


@settings(max_examples=20, deadline=None)
@given(depth=st.sampled_from((33, 100, 5_000)), dialect=st.sampled_from(("not", "all", "any")))
def test_parse_filter_deep_nesting(depth: int, dialect: str) -> None:
    """all/any/not nested beyond the limit are one FilterError naming the rule."""
    spec: Any = {"exact": {"type": "x"}}
    for _ in range(depth):
        spec = {dialect: spec} if dialect == "not" else {dialect: [spec]}
    with pytest.raises(FilterError) as info:
        parse_filter(spec)
    exc = info.value
    assert "nest at most" in str(exc) and len(str(exc)) < 2_000


@FUZZ
@given(text=st.text(max_size=40))
def test_cesql_on_any_text(text: str) -> None:
    """Arbitrary text (surrogates and control characters included) is parsed or refused as FilterError."""
    with contextlib.suppress(FilterError):
        parse_filter(text)
