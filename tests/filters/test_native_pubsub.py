"""Pub/Sub subscription filters: operator mappings, limits, the evaluator, and the guarantee."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings

from polybus.adapters.gcp.filters import (
    MAX_FILTER_BYTES,
    evaluate_pubsub,
    message_attributes,
    to_pubsub,
)
from polybus.core.filters.dialects import All, Exact, Filter, Not, Prefix, Sql, Suffix, parse_filter
from tests.filters.native_property import check_guarantee
from tests.filters.strategies import events, filters


def _evaluate(expression: Any, attrs: Mapping[str, Any]) -> bool:
    return evaluate_pubsub(expression, message_attributes(attrs))


@settings(max_examples=400, deadline=None)
@given(filters, events())
def test_guarantee(flt: Filter, attrs: dict[str, Any]) -> None:
    """For random filters and events: native ⊇ portable and native ∧ residual = portable."""
    check_guarantee(flt, attrs, to_pubsub, _evaluate)


def test_benchmark_expression_is_fully_native() -> None:
    """type = ... AND subject LIKE 'eu-%' becomes an equality and a hasPrefix on ce-* keys."""
    compiled = to_pubsub(parse_filter("type = 'com.shop.order.placed' AND subject LIKE 'eu-%'"))
    assert compiled.native == (
        'attributes.ce-type = "com.shop.order.placed" AND hasPrefix(attributes.ce-subject, "eu-")'
    )
    assert compiled.residual is None


def test_suffix_is_presence_plus_residual() -> None:
    """Pub/Sub has no suffix: the native filter only asks for the attribute."""
    compiled = to_pubsub(Suffix("subject", ".ca"))
    assert compiled.native == "attributes:ce-subject"
    assert compiled.residual == Suffix("subject", ".ca")
    assert compiled.verdict == "partly native"


def test_not_exact_is_not_equal_and_true_when_missing() -> None:
    """NOT exact maps to != which Pub/Sub evaluates as true for a missing attribute."""
    compiled = to_pubsub(Not(Exact("subject", "x")))
    assert compiled.native == 'attributes.ce-subject != "x"'
    assert evaluate_pubsub(compiled.native, {"ce-type": "t"})


def test_or_and_not_get_parentheses() -> None:
    """Mixing AND and OR is parenthesised, as Pub/Sub requires."""
    flt = parse_filter("(type = 'a' OR type = 'b') AND NOT (subject LIKE 'x%')")
    compiled = to_pubsub(flt)
    assert compiled.native is not None
    assert "(" in compiled.native
    assert evaluate_pubsub(compiled.native, {"ce-type": "b", "ce-subject": "y"})
    assert not evaluate_pubsub(compiled.native, {"ce-type": "b", "ce-subject": "xy"})


def test_datacontenttype_uses_content_type_key() -> None:
    """datacontenttype travels as the content-type attribute in binary mode."""
    assert to_pubsub(Exact("datacontenttype", "application/json")).native == (
        'attributes.content-type = "application/json"'
    )


def test_quotes_are_escaped() -> None:
    """A value with quotes and backslashes round-trips through the evaluator."""
    compiled = to_pubsub(Prefix("subject", 'a"b\\'))
    assert evaluate_pubsub(compiled.native, {"ce-subject": 'a"b\\c'})


def test_limit_drops_conjuncts_into_residual() -> None:
    """Over 256 bytes the filter keeps what fits; the rest is residual."""
    flt = All(tuple(Exact(f"e{i}", "v" * 60) for i in range(6)))
    compiled = to_pubsub(flt)
    assert compiled.native is not None
    assert len(compiled.native.encode()) <= MAX_FILTER_BYTES
    assert isinstance(compiled.residual, All)


def test_exists_maps_to_presence() -> None:
    """EXISTS a is attributes:ce-a, exactly."""
    compiled = to_pubsub(Sql("EXISTS region"))
    assert compiled.native == "attributes:ce-region"
    assert compiled.residual is None


def test_evaluator_rejects_mixed_and_or() -> None:
    """The reference evaluator refuses a filter that mixes AND and OR without parentheses."""
    with pytest.raises(ValueError, match="parentheses"):
        evaluate_pubsub("attributes:a AND attributes:b OR attributes:c", {})


def test_evaluator_dash_is_not_and_hasprefix_missing_is_false() -> None:
    """'-' negates; hasPrefix on a missing key is false."""
    assert evaluate_pubsub("-attributes:a", {})
    assert not evaluate_pubsub('hasPrefix(attributes.a, "")', {})
