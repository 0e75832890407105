"""EventBridge event patterns: operator mappings, limits, and the native/residual guarantee."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings

from polybus.adapters.aws.filters import (
    MAX_PATTERN_CHARS,
    compile_filter,
    envelope_of,
    evaluate_eventbridge,
    pattern_size,
)
from polybus.core.filters.dialects import All, Exact, Filter, Not, Prefix, Sql, Suffix, parse_filter
from tests.filters.native_property import check_guarantee
from tests.filters.strategies import events, filters


def _evaluate(pattern: Any, attrs: Mapping[str, Any]) -> bool:
    return evaluate_eventbridge(pattern, envelope_of(attrs))


@settings(max_examples=400, deadline=None)
@given(filters, events())
def test_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """For random filters and events: native ⊇ portable and native ∧ residual = portable."""
    check_guarantee(flt, attrs, compile_filter, _evaluate)


def test_type_and_prefix_sql_is_fully_native() -> None:
    """The benchmark expression becomes detail-type plus a prefix on detail.subject."""
    flt = parse_filter("type = 'com.shop.order.placed' AND subject LIKE 'eu-%'")
    compiled = compile_filter(flt)
    assert compiled.native == {
        "detail-type": ["com.shop.order.placed"],
        "detail": {"subject": [{"prefix": "eu-"}]},
    }
    assert compiled.residual is None
    assert compiled.verdict == "fully native"


def test_source_maps_to_envelope_source_and_suffix() -> None:
    """source goes to the envelope's source; suffix maps to the suffix operator."""
    compiled = compile_filter(Suffix("source", ".ca"))
    assert compiled.native == {"source": [{"suffix": ".ca"}]}
    assert compiled.residual is None


def test_exact_on_extension_also_matches_numbers_and_booleans() -> None:
    """An extension compared with '5' matches the JSON number 5 too (canonical string)."""
    assert compile_filter(Exact("num", "5")).native == {"detail": {"num": ["5", 5]}}
    assert compile_filter(Exact("flag", "true")).native == {"detail": {"flag": ["true", True]}}


def test_not_equal_uses_anything_but() -> None:
    """subject != 'x' becomes anything-but on a field that must exist."""
    compiled = compile_filter(Sql("subject != 'x'"))
    assert compiled.native == {"detail": {"subject": [{"anything-but": ["x"]}]}}
    assert compiled.residual is None


def test_not_exact_on_optional_attribute_keeps_missing_events() -> None:
    """NOT exact on subject also passes events without a subject ($or with exists:false)."""
    compiled = compile_filter(Not(Exact("subject", "x")))
    assert compiled.native == {
        "$or": [
            {"detail": {"subject": [{"anything-but": ["x"]}]}},
            {"detail": {"subject": [{"exists": False}]}},
        ]
    }
    assert evaluate_eventbridge(compiled.native, envelope_of({"type": "t", "source": "s"}))


def test_exists_and_not_exists() -> None:
    """EXISTS and NOT EXISTS map to the exists operator."""
    assert compile_filter(Sql("EXISTS region")).native == {"detail": {"region": [{"exists": True}]}}
    assert compile_filter(Sql("NOT EXISTS region")).native == {
        "detail": {"region": [{"exists": False}]}
    }


def test_lower_equals_uses_equals_ignore_case() -> None:
    """LOWER(subject) = 'abc' is equals-ignore-case."""
    compiled = compile_filter(Sql("LOWER(subject) = 'abc'"))
    assert compiled.native == {"detail": {"subject": [{"equals-ignore-case": "abc"}]}}
    assert compiled.residual is None


def test_numeric_comparison_is_broadened_with_a_residual() -> None:
    """num > 5 uses numeric but keeps strings (CESQL casts '7') and leaves a residual."""
    compiled = compile_filter(Sql("num > 5"))
    assert compiled.native == {
        "detail": {
            "num": [
                {"numeric": [">", 5]},
                {"prefix": ""},
            ]
        }
    }
    assert compiled.residual == Sql("num > 5")
    assert compiled.verdict == "partly native"


def test_or_on_one_field_merges_values() -> None:
    """type IN ('a', 'b') is one field with two values."""
    compiled = compile_filter(Sql("type IN ('a', 'b')"))
    assert compiled.native == {"detail-type": ["a", "b"]}


def test_or_across_fields_uses_dollar_or() -> None:
    """An OR over different attributes becomes $or."""
    compiled = compile_filter(
        parse_filter({"any": [{"exact": {"type": "a"}}, {"prefix": {"source": "s"}}]})
    )
    assert compiled.native == {"$or": [{"detail-type": ["a"]}, {"source": [{"prefix": "s"}]}]}


def test_case_sensitive_conjunction_split() -> None:
    """A conjunction keeps what EventBridge can say and leaves the rest (a LIKE with _) residual."""
    compiled = compile_filter(parse_filter("type = 'a' AND subject LIKE 'a_c'"))
    assert compiled.native == {"detail-type": ["a"], "detail": {"subject": [{"exists": True}]}}
    assert compiled.residual == Sql("subject LIKE 'a_c'")


def test_too_long_pattern_falls_back_and_keeps_the_rest_residual() -> None:
    """Over 2,048 characters, conjuncts are dropped from the pattern into the residual."""
    parts = tuple(Exact(f"ext{i}", "v" * 300) for i in range(10))
    compiled = compile_filter(All(parts))
    assert compiled.native is not None
    assert pattern_size(compiled.native) <= MAX_PATTERN_CHARS
    assert isinstance(compiled.residual, All)
    assert 0 < len(compiled.residual.filters) < 10


def test_client_side_only_when_nothing_maps() -> None:
    """A filter EventBridge cannot express at all (an OR with a NOT LIKE on an extension) stays client-side."""
    flt = parse_filter({"not": {"suffix": {"myext": "1"}}})
    compiled = compile_filter(flt)
    assert compiled.native is None
    assert compiled.residual == flt
    assert compiled.verdict == "client-side only"


def test_none_filter() -> None:
    """No filter: everything passes natively, nothing residual."""
    assert compile_filter(None).native is None
    assert compile_filter(None).residual is None


def test_prefix_mapping_on_string_attribute() -> None:
    """prefix on a context attribute maps to the prefix operator exactly."""
    compiled = compile_filter(Prefix("subject", "eu-"))
    assert compiled.native == {"detail": {"subject": [{"prefix": "eu-"}]}}
    assert compiled.residual is None
