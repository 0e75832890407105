"""Event Grid filter semantics as documented (event-filtering), evaluated by the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from polybus.adapters.azure.emulator.filter import compile_subscription_filter
from polybus.core.errors import FilterError

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "1",
    "source": "/shop",
    "type": "Order.Placed",
    "subject": "EU/orders/7",
    "region": "eu-west",
    "data": {"amount": 12.5, "paid": True, "tags": ["a", "B"], "note": None, "nested": {"x": 3}},
}


def _matches(*filters: dict[str, Any], **top: Any) -> bool:
    spec = {"advancedFilters": list(filters), **top} if filters else top
    return compile_subscription_filter(spec)(EVENT)


def test_included_event_types_ignore_case():
    """includedEventTypes compares the type without regard to case."""
    assert _matches(includedEventTypes=["order.placed"])
    assert not _matches(includedEventTypes=["order.paid"])


def test_subject_prefix_and_suffix_ignore_case_unless_asked():
    """subjectBeginsWith/EndsWith ignore case unless isSubjectCaseSensitive."""
    assert _matches(subjectBeginsWith="eu/", subjectEndsWith="/7")
    assert not _matches(subjectBeginsWith="eu/", isSubjectCaseSensitive=True)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"operatorType": "StringIn", "key": "region", "values": ["EU-WEST", "us"]}, True),
        ({"operatorType": "StringContains", "key": "subject", "values": ["orders"]}, True),
        ({"operatorType": "StringBeginsWith", "key": "source", "values": ["/x", "/SH"]}, True),
        ({"operatorType": "StringNotEndsWith", "key": "subject", "values": ["/7"]}, False),
        ({"operatorType": "NumberGreaterThanOrEquals", "key": "data.amount", "value": 12.5}, True),
        ({"operatorType": "NumberLessThan", "key": "data.amount", "value": 12.5}, False),
        ({"operatorType": "NumberIn", "key": "data.nested.x", "values": [1, 3]}, True),
        (
            {"operatorType": "NumberInRange", "key": "data.amount", "values": [[0, 5], [10, 20]]},
            True,
        ),
        ({"operatorType": "NumberNotInRange", "key": "data.amount", "values": [[10, 20]]}, False),
        ({"operatorType": "BoolEquals", "key": "data.paid", "value": True}, True),
        ({"operatorType": "IsNullOrUndefined", "key": "data.note"}, True),
        ({"operatorType": "IsNullOrUndefined", "key": "data.absent"}, True),
        ({"operatorType": "IsNotNull", "key": "data.amount"}, True),
        ({"operatorType": "NumberGreaterThan", "key": "region", "value": 1}, False),
    ],
)
def test_advanced_operators(flt, expected):
    """Each advanced operator evaluates as documented."""
    assert _matches(flt) is expected


def test_missing_key_matches_only_the_not_in_operators():
    """A missing key fails every operator except NumberNotIn and StringNotIn."""
    for op in ("StringNotIn", "NumberNotIn"):
        assert _matches({"operatorType": op, "key": "data.absent", "values": [1]})
    for op in ("StringNotContains", "StringNotBeginsWith", "StringIn", "NumberIn"):
        assert not _matches({"operatorType": op, "key": "data.absent", "values": [1]})


def test_values_are_ored_and_filters_anded():
    """Any value of one filter may match; every filter must match."""
    a = {"operatorType": "StringIn", "key": "region", "values": ["x", "eu-west"]}
    b = {"operatorType": "NumberLessThan", "key": "data.amount", "value": 1}
    assert _matches(a)
    assert not _matches(a, b)


def test_array_values_need_advanced_filtering_on_arrays():
    """Array fields only match element-wise when enableAdvancedFilteringOnArrays is set."""
    flt = {"operatorType": "StringIn", "key": "data.tags", "values": ["b"]}
    assert not _matches(flt)
    assert _matches(flt, enableAdvancedFilteringOnArrays=True)


def test_limits_are_enforced_with_every_problem_listed():
    """More than 25 values, long strings and unknown operators are refused together."""
    too_many = {"operatorType": "StringIn", "key": "k", "values": [str(i) for i in range(26)]}
    too_long = {"operatorType": "StringIn", "key": "k", "values": ["x" * 513]}
    unknown = {"operatorType": "StringLike", "key": "k", "values": ["x"]}
    with pytest.raises(FilterError) as caught:
        compile_subscription_filter({"advancedFilters": [too_many, too_long, unknown]})
    assert len(caught.value.problems) == 3
