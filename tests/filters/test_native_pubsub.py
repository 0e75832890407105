"""Pub/Sub subscription filters: operator mappings and limits, checked with the emulator's evaluator.

The native/residual guarantee under that evaluator is
tests/filters/test_native_through_emulators.py; the grammar itself is
tests/gcp/test_emulator_filter.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from polybus.adapters.gcp.emulator.filter import compile_pubsub_filter
from polybus.adapters.gcp.filters import MAX_FILTER_BYTES, compile_filter
from polybus.core.filters.dialects import All, Exact, Not, Prefix, Sql, Suffix, parse_filter


def evaluate_pubsub(expression: str | None, attributes: Mapping[str, str]) -> bool:
    """Whether the emulator's filter evaluator accepts a message with these attributes."""
    return compile_pubsub_filter(expression or "")(attributes)


def test_benchmark_expression_is_fully_native() -> None:
    """type = ... AND subject LIKE 'eu-%' becomes an equality and a hasPrefix on ce-* keys."""
    compiled = compile_filter(
        parse_filter("type = 'com.shop.order.placed' AND subject LIKE 'eu-%'")
    )
    assert compiled.native == (
        'attributes.ce-type = "com.shop.order.placed" AND hasPrefix(attributes.ce-subject, "eu-")'
    )
    assert compiled.residual is None


def test_suffix_is_presence_plus_residual() -> None:
    """Pub/Sub has no suffix: the native filter only asks for the attribute."""
    compiled = compile_filter(Suffix("subject", ".ca"))
    assert compiled.native == "attributes:ce-subject"
    assert compiled.residual == Suffix("subject", ".ca")
    assert compiled.verdict == "partly native"


def test_not_exact_is_not_equal_and_true_when_missing() -> None:
    """NOT exact maps to != which Pub/Sub evaluates as true for a missing attribute."""
    compiled = compile_filter(Not(Exact("subject", "x")))
    assert compiled.native == 'attributes.ce-subject != "x"'
    assert evaluate_pubsub(compiled.native, {"ce-type": "t"})


def test_or_and_not_get_parentheses() -> None:
    """Mixing AND and OR is parenthesised, as Pub/Sub requires."""
    flt = parse_filter("(type = 'a' OR type = 'b') AND NOT (subject LIKE 'x%')")
    compiled = compile_filter(flt)
    assert compiled.native is not None
    assert "(" in compiled.native
    assert evaluate_pubsub(compiled.native, {"ce-type": "b", "ce-subject": "y"})
    assert not evaluate_pubsub(compiled.native, {"ce-type": "b", "ce-subject": "xy"})


def test_datacontenttype_uses_content_type_key() -> None:
    """datacontenttype travels as the content-type attribute in binary mode."""
    assert compile_filter(Exact("datacontenttype", "application/json")).native == (
        'attributes.content-type = "application/json"'
    )


def test_quotes_are_escaped() -> None:
    """A value with quotes and backslashes round-trips through the evaluator."""
    compiled = compile_filter(Prefix("subject", 'a"b\\'))
    assert evaluate_pubsub(compiled.native, {"ce-subject": 'a"b\\c'})


def test_limit_drops_conjuncts_into_residual() -> None:
    """Over 256 bytes the filter keeps what fits; the rest is residual."""
    flt = All(tuple(Exact(f"e{i}", "v" * 60) for i in range(6)))
    compiled = compile_filter(flt)
    assert compiled.native is not None
    assert len(compiled.native.encode()) <= MAX_FILTER_BYTES
    assert isinstance(compiled.residual, All)


def test_exists_maps_to_presence() -> None:
    """EXISTS a is attributes:ce-a, exactly."""
    compiled = compile_filter(Sql("EXISTS region"))
    assert compiled.native == "attributes:ce-region"
    assert compiled.residual is None
