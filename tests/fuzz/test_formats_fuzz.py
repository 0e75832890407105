"""The event decoders of core.formats and core.events raise only polybus errors, whatever the bytes."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.errors import EventValidationError, PolybusError
from polybus.core.events import new_event, validate_attributes
from polybus.core.formats import (
    from_dict,
    from_http_binary,
    from_json,
    from_json_batch,
    to_http_binary,
    to_json,
    to_json_batch,
)
from tests.fuzz.strategies import DEEP, invalid_utf8, mutated, nested_json

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EVENT = new_event(
    "com.example.order.placed",
    "/shop/eu",
    {"orderId": "o-1", "lines": [{"sku": "a", "qty": 2}], "total": 9.5},
    subject="o-1",
    time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    extensions={"partitionkey": "o-1", "seq": 7},
)
BINARY_EVENT = new_event("com.example.blob", "/s", b"\x00\x01binary", datacontenttype="x/y")
VALID_JSON = to_json(EVENT)
VALID_BATCH = to_json_batch([EVENT, BINARY_EVENT])
HEADERS, BODY = to_http_binary(EVENT)


def only_polybus_errors(call: Any, *args: Any) -> None:
    """Run `call`; any exception other than a PolybusError fails the test (with its traceback)."""
    with contextlib.suppress(PolybusError):
        call(*args)


@FUZZ
@given(payload=mutated(VALID_JSON))
def test_from_json_on_mutated_events(payload: bytes) -> None:
    """from_json raises only polybus errors on mutated structured events."""
    only_polybus_errors(from_json, payload)


@FUZZ
@given(payload=mutated(VALID_BATCH))
def test_from_json_batch_on_mutated_batches(payload: bytes) -> None:
    """from_json_batch raises only polybus errors on mutated batches."""
    only_polybus_errors(from_json_batch, payload)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from([*sorted(HEADERS), "ce-time", "ce-x", "ce-", "Content-Type", "ce-Data"]),
        st.one_of(
            st.sampled_from(sorted(HEADERS.values())),
            st.text(max_size=40),
            st.sampled_from(("%ff", "%", "2026-13-40T99:00:00Z", "0.3", "%E2%28")),
        ),
        max_size=9,
    ),
    body=st.one_of(mutated(BODY), st.binary(max_size=64), st.sampled_from(DEEP).map(nested_json)),
)
def test_from_http_binary_on_mutated_messages(headers: dict[str, str], body: bytes) -> None:
    """from_http_binary raises only polybus errors on mutated headers and bodies."""
    only_polybus_errors(from_http_binary, {**HEADERS, **headers}, body)


@settings(max_examples=20, deadline=None)
@given(depth=st.sampled_from(DEEP), kind=st.sampled_from("[{"), where=st.integers(0, 2))
def test_deep_nesting_is_a_validation_error(depth: int, kind: str, where: int) -> None:
    """JSON nested up to 100,000 deep, as the body, an attribute or the data, is only ever rejected as invalid."""
    nested = nested_json(depth, kind)
    payloads = (
        nested,
        b'{"specversion":"1.0","id":' + nested + b',"source":"s","type":"t"}',
        b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":' + nested + b"}",
    )
    only_polybus_errors(from_json, payloads[where])
    only_polybus_errors(from_json_batch, b"[" + payloads[where] + b"]")
    headers = {**HEADERS, "content-type": "application/json"}
    only_polybus_errors(from_http_binary, headers, nested)


def test_deeply_nested_json_names_the_rule() -> None:
    """A 100,000-deep body is an EventValidationError saying it is nested too deeply."""
    for decode in (from_json, from_json_batch):
        with pytest.raises(EventValidationError) as info:
            decode(nested_json(100_000))
        exc = info.value
        assert "nested too deeply" in str(exc)


@FUZZ
@given(prefix=st.binary(max_size=20), bad=invalid_utf8, suffix=st.binary(max_size=20))
def test_invalid_utf8_anywhere(prefix: bytes, bad: bytes, suffix: bytes) -> None:
    """Invalid UTF-8 in a body or a JSON event is a polybus error, never UnicodeDecodeError."""
    at = len(VALID_JSON) // 2
    only_polybus_errors(from_json, VALID_JSON[:at] + bad + VALID_JSON[at:])
    only_polybus_errors(from_json, prefix + bad + suffix)
    only_polybus_errors(from_json_batch, prefix + bad + suffix)
    headers = {**HEADERS, "content-type": "application/json"}
    only_polybus_errors(from_http_binary, headers, prefix + bad + suffix)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
attribute_values = st.one_of(
    json_values,
    st.binary(max_size=8),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**5000),
)
attribute_names = st.one_of(
    st.sampled_from(("id", "source", "type", "specversion", "time", "subject", "dataschema")),
    st.sampled_from(("datacontenttype", "data", "data_base64", "Ext", "ok1", "x" * 21)),
    st.text(max_size=6),
)


@FUZZ
@given(changes=st.dictionaries(attribute_names, attribute_values, max_size=5))
def test_from_dict_and_validation_on_any_attributes(changes: dict[str, Any]) -> None:
    """from_dict and validate_attributes raise only polybus errors for any attribute values."""
    base: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    only_polybus_errors(from_dict, {**base, **changes})
    only_polybus_errors(validate_attributes, {**base, **changes}, changes.get("data"))


@FUZZ
@given(
    type_=st.one_of(st.text(max_size=10), attribute_values),
    source=st.one_of(st.text(max_size=10), attribute_values),
    data=st.one_of(json_values, st.binary(max_size=8), st.sets(st.integers(), max_size=2)),
    extensions=st.dictionaries(attribute_names, attribute_values, max_size=3),
)
def test_new_event_on_any_input(type_: Any, source: Any, data: Any, extensions: Any) -> None:
    """new_event raises only polybus errors for any type, source, data and extensions."""
    only_polybus_errors(lambda: new_event(type_, source, data, extensions=extensions))


def test_new_event_with_data_too_deep_to_encode() -> None:
    """Data nested deeper than JSON can encode is an EventValidationError naming data."""
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(EventValidationError) as info:
        new_event("t", "/s", deep)
    exc = info.value
    assert [p.field for p in exc.problems] == ["data"]


def test_data_base64_of_any_shape() -> None:
    """data_base64 that is not base64 text is named with its rule."""
    base = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}
    for bad in ("***", 12, ["x"], base64.b64encode(b"ok").decode() + "!"):
        with pytest.raises(EventValidationError) as info:
            from_dict({**base, "data_base64": bad})
        assert info.value.problems[0].field == "data_base64"
