"""The CESQL engine beyond the TCK: errors with positions, matching, the two evaluators, lowering."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from polybus.core.errors import FilterError
from polybus.core.filters import cesql
from polybus.core.filters.cesql.lowering import lower_sql
from polybus.core.filters.cesql.parser import parse_expression
from polybus.core.filters.dialects import compile_filter, parse_filter
from tests.filters.strategies import events, sql_expressions


@pytest.mark.parametrize(
    ("expression", "position", "reason"),
    [
        ("type = ", 7, "expected a value"),
        ("type = 'abc", 7, "unterminated string"),
        ("subject LIKE 5", 13, "string literal pattern"),
        ("a IN 1", 5, "'(' to open the IN set"),
        ("(type = 'a'", 11, "')' to close"),
        ("type == 'a'", 6, "expected a value"),
        ("2147483648 = 1", 0, "32-bit range"),
        ("my_ext = 'a'", 0, "attribute names"),
        ("type = 'a' ;", 11, "unexpected character"),
    ],
)
def test_parse_errors_name_the_position(expression: str, position: int, reason: str) -> None:
    """A malformed expression raises FilterError with the position and reason."""
    with pytest.raises(FilterError) as info:
        cesql.parse(expression, path="spec.filter")
    (problem,) = info.value.problems
    assert problem.field == "spec.filter"
    assert problem.value == expression
    assert problem.rule.startswith(f"parse error at position {position}: ")
    assert reason in problem.rule


def test_unknown_function_is_rejected_at_subscribe_time() -> None:
    """parse() rejects a call of a function that does not exist, naming it and its position."""
    with pytest.raises(FilterError, match=r"missingFunction at position 9: no function NOPE"):
        cesql.parse("TRUE AND NOPE(1)")
    assert cesql.evaluate("NOPE(1)", {}) == (False, "missingFunction")


def test_parse_filter_rejects_bad_sql_with_its_path() -> None:
    """The Subscriptions API reader reports where in the filter the bad CESQL sits."""
    with pytest.raises(FilterError) as info:
        parse_filter({"all": [{"exact": {"type": "a"}}, {"sql": "type ="}]})
    assert info.value.problems[0].field == "filter.all[1].sql"


def test_matches_needs_true_without_errors() -> None:
    """matches() is true only for boolean true with no error (a cast error or non-boolean is no match)."""
    attrs = {"type": "t", "num": "x"}
    assert cesql.parse("type = 't'").matches(attrs)
    assert not cesql.parse("type").matches(attrs)  # a string, not a boolean
    assert not cesql.parse("num + 0 = 0 OR TRUE").matches(attrs)  # cast error recorded
    assert not cesql.parse("missing = 'x' OR type = 't'").matches(attrs)  # missing attribute fails


def test_keywords_and_functions_ignore_case() -> None:
    """Keywords, function names and identifiers are case-insensitive."""
    assert cesql.evaluate("upper(Type) like 'T%' and not false", {"type": "tx"}) == (True, None)


def test_overflow_is_a_math_error_with_a_clamped_value() -> None:
    """Integer overflow records a math error and clamps to the 32-bit range."""
    assert cesql.evaluate("2147483647 + 1", {}) == (2147483647, "math")
    assert cesql.evaluate("-7 / 2", {}) == (-3, None)
    assert cesql.evaluate("-7 % 2", {}) == (-1, None)


def test_non_string_attributes_are_cast() -> None:
    """Integer and boolean extensions compare as their canonical strings with string literals."""
    attrs = {"num": 5, "flag": True}
    assert cesql.evaluate("num = '5' AND flag = 'true' AND num > 4", attrs) == (True, None)


def test_is_int_and_is_bool() -> None:
    """IS_INT / IS_BOOL say whether a cast would succeed."""
    assert cesql.evaluate("IS_INT('12') AND NOT IS_INT('x') AND IS_BOOL('False')", {}) == (
        True,
        None,
    )


@settings(max_examples=300, deadline=None)
@given(sql_expressions, events())
def test_compiled_equals_tree_walker(expression: str, attrs: dict[str, Any]) -> None:
    """The compiled closures and the tree walker agree on value and error."""
    compiled = cesql.parse(expression)
    assert compiled.evaluate(attrs) == cesql.evaluate_tree(compiled.ast, attrs)


@settings(max_examples=300, deadline=None)
@given(sql_expressions, events())
def test_lowering_is_exact(expression: str, attrs: dict[str, Any]) -> None:
    """The portable rewrite of a CESQL filter matches exactly the same events."""
    assert compile_filter(lower_sql(expression))(attrs) == cesql.parse(expression).matches(attrs)


@settings(max_examples=300, deadline=None)
@given(sql_expressions, events())
def test_unparse_round_trips(expression: str, attrs: dict[str, Any]) -> None:
    """Printing the tree back to CESQL gives an expression with the same result."""
    ast = parse_expression(expression)
    again = cesql.unparse(ast)
    assert cesql.evaluate(again, attrs) == cesql.evaluate(expression, attrs)


def test_nesting_limits_name_the_rule_and_position() -> None:
    """85 parentheses and a 300-term OR chain are FilterErrors naming the limit, not RecursionError."""
    from polybus.core.filters.cesql.parser import MAX_DEPTH, MAX_NESTING

    with pytest.raises(FilterError, match=f"expression nested deeper than {MAX_NESTING} levels"):
        cesql.parse("(" * 85 + "true" + ")" * 85)
    with pytest.raises(FilterError, match=f"nested deeper than {MAX_DEPTH} levels"):
        cesql.parse(" OR ".join(["type = 'x'"] * 300))
    assert cesql.parse(" OR ".join(["type = 'x'"] * 150)).matches({"type": "x"})


def test_dialect_nesting_and_attribute_names_are_checked() -> None:
    """Subscriptions API filters nest at most 32 deep; an attribute name with a newline is refused."""
    spec: Any = {"exact": {"type": "x"}}
    for _ in range(40):
        spec = {"not": spec}
    with pytest.raises(FilterError, match="nest at most 32 levels"):
        parse_filter(spec)
    with pytest.raises(FilterError, match="attribute names"):
        parse_filter({"exact": {"type\n": "x"}})
