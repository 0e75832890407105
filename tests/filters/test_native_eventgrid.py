"""Event Grid filters: case-insensitive mapping, limits, the evaluator, and the guarantee."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from polybus.adapters.azure.filters import (
    MAX_ADVANCED_FILTERS,
    compile_filter,
    evaluate_eventgrid,
)
from polybus.core.filters.dialects import All, Exact, Filter, Not, Prefix, Sql, Suffix, parse_filter
from tests.filters.native_property import check_guarantee
from tests.filters.strategies import events, filters


@settings(max_examples=400, deadline=None)
@given(filters, events())
def test_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """For random filters and events: native ⊇ portable and native ∧ residual = portable."""
    check_guarantee(flt, attrs, compile_filter, evaluate_eventgrid)


def test_benchmark_expression_is_partly_native() -> None:
    """type and subject prefix map to includedEventTypes and subjectBeginsWith, kept residual (case)."""
    flt = parse_filter("type = 'com.shop.order.placed' AND subject LIKE 'eu-%'")
    compiled = compile_filter(flt)
    assert compiled.native == {
        "includedEventTypes": ["com.shop.order.placed"],
        "subjectBeginsWith": "eu-",
    }
    assert compiled.residual == flt
    assert compiled.verdict == "partly native"


def test_native_ignores_case_so_residual_is_needed() -> None:
    """Event Grid passes 'EU-1' for subjectBeginsWith 'eu-'; the residual then rejects it."""
    compiled = compile_filter(Prefix("subject", "eu-"))
    assert evaluate_eventgrid(compiled.native, {"type": "t", "subject": "EU-1"})
    assert compiled.residual == Prefix("subject", "eu-")


def test_or_of_sources_is_one_string_in_filter() -> None:
    """An OR over one key becomes the values of one StringIn filter."""
    compiled = compile_filter(parse_filter("source IN ('a', 'b')"))
    assert compiled.native == {
        "advancedFilters": [{"operatorType": "StringIn", "key": "source", "values": ["a", "b"]}]
    }


def test_exists_and_not_exists_are_exact() -> None:
    """EXISTS / NOT EXISTS map to IsNotNull / IsNullOrUndefined with no residual."""
    both = compile_filter(parse_filter("EXISTS region AND NOT EXISTS flag"))
    assert both.native == {
        "advancedFilters": [
            {"operatorType": "IsNotNull", "key": "region"},
            {"operatorType": "IsNullOrUndefined", "key": "flag"},
        ]
    }
    assert both.residual is None
    assert both.verdict == "fully native"


def test_not_of_string_test_is_client_side_only() -> None:
    """NOT exact cannot be native (StringNotIn would also reject other casings)."""
    flt = Not(Exact("source", "a"))
    compiled = compile_filter(flt)
    assert compiled.native is None
    assert compiled.residual == flt
    assert compiled.verdict == "client-side only"


def test_suffix_on_subject_and_extension() -> None:
    """Suffix maps to subjectEndsWith for subject and StringEndsWith for other keys."""
    compiled = compile_filter(All((Suffix("subject", ".jpg"), Suffix("region", "-x"))))
    assert compiled.native == {
        "subjectEndsWith": ".jpg",
        "advancedFilters": [{"operatorType": "StringEndsWith", "key": "region", "values": ["-x"]}],
    }


def test_numeric_looking_extension_value_falls_back_to_presence() -> None:
    """'5' could be the integer 5 (not a string for StringIn), so only presence is native."""
    compiled = compile_filter(Exact("num", "5"))
    assert compiled.native == {"advancedFilters": [{"operatorType": "IsNotNull", "key": "num"}]}


def test_more_than_25_filters_keeps_the_rest_residual() -> None:
    """Past 25 advanced filters the remaining conjuncts go to the residual only."""
    flt = All(tuple(Sql(f"EXISTS e{i}") for i in range(30)))
    compiled = compile_filter(flt)
    assert compiled.native is not None
    assert len(compiled.native["advancedFilters"]) == MAX_ADVANCED_FILTERS
    assert isinstance(compiled.residual, All)
    assert len(compiled.residual.filters) == 5


def test_long_string_values_are_not_sent() -> None:
    """A value over 512 characters is not put in the native filter."""
    compiled = compile_filter(Exact("source", "s" * 600))
    assert compiled.native is None
    assert compiled.verdict == "client-side only"


def test_evaluator_missing_key_only_matches_not_in() -> None:
    """A missing key fails every operator except StringNotIn and NumberNotIn."""
    string_not_in = {
        "advancedFilters": [{"operatorType": "StringNotIn", "key": "x", "values": ["a"]}]
    }
    string_in = {"advancedFilters": [{"operatorType": "StringIn", "key": "x", "values": ["a"]}]}
    number_not_in = {
        "advancedFilters": [{"operatorType": "NumberNotIn", "key": "x", "values": [1]}]
    }
    assert evaluate_eventgrid(string_not_in, {"type": "t"})
    assert evaluate_eventgrid(number_not_in, {"type": "t"})
    assert not evaluate_eventgrid(string_in, {"type": "t"})


def test_evaluator_number_operators() -> None:
    """Number operators compare numbers; BoolEquals compares booleans."""
    native = {
        "advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "n", "value": 3},
            {"operatorType": "NumberInRange", "key": "n", "values": [[4, 6]]},
            {"operatorType": "BoolEquals", "key": "b", "value": True},
        ]
    }
    assert evaluate_eventgrid(native, {"n": 5, "b": True})
    assert not evaluate_eventgrid(native, {"n": 7, "b": True})
    assert not evaluate_eventgrid(native, {"n": 5, "b": False})


def test_included_event_types_ignore_case() -> None:
    """includedEventTypes matches the type case-insensitively."""
    assert evaluate_eventgrid({"includedEventTypes": ["A.b"]}, {"type": "a.B"})
    assert not evaluate_eventgrid({"includedEventTypes": ["A.b"]}, {"type": "a.c"})
