"""Event creation, validation and the JSON and HTTP binary formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory, attributes_of, new_event, validate_attributes
from polybus.core.formats import (
    from_http_binary,
    from_json,
    from_json_batch,
    to_http_binary,
    to_json,
    to_json_batch,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _factory() -> EventFactory:
    ids = iter(range(100))
    return EventFactory(id_factory=lambda: f"id-{next(ids)}", clock=lambda: T0)


def test_factory_is_reproducible() -> None:
    """Injected id factory and clock give the same events on every run."""
    a = _factory().new("t", "/s", {"x": 1})
    b = _factory().new("t", "/s", {"x": 1})
    assert a.get_attributes() == b.get_attributes()
    assert a.get_id() == "id-0" and a.get_time() == T0


def test_defaults_fill_specversion_and_json_content_type() -> None:
    """new_event sets specversion 1.0, a time, an id and application/json for JSON data."""
    event = new_event("com.x", "/x", {"k": "v"})
    assert event.get_specversion() == "1.0"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_id() and event.get_time() is not None


def test_validation_reports_every_problem_at_once() -> None:
    """One error names each bad attribute, its value and the rule it breaks."""
    with pytest.raises(EventValidationError) as info:
        new_event(
            "",
            "/s",
            {1, 2},
            extensions={"Bad-Name": 1, "big": 2**40, "obj": object()},
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {"type", "Bad-Name", "big", "obj", "data"}
    assert "[a-z0-9]{1,20}" in str(info.value)
    assert "32 bits" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_required_attributes_are_named() -> None:
    """Missing id, source, type and specversion are each reported as required."""
    with pytest.raises(EventValidationError) as info:
        validate_attributes({})
    assert {p.field for p in info.value.problems} == {"id", "source", "type", "specversion"}
    assert all(p.rule == "required attribute is missing" for p in info.value.problems)


def test_naive_time_is_rejected() -> None:
    """A timestamp without a timezone is not RFC 3339 and is refused."""
    with pytest.raises(EventValidationError, match="timezone-aware"):
        new_event("t", "/s", time=datetime(2026, 1, 1))


def test_json_round_trip_preserves_everything() -> None:
    """Structured JSON encode then decode gives an identical event (attributes and data)."""
    event = _factory().new(
        "com.iot.telemetry",
        "/devices/7",
        {"temp": 21.5, "tags": ["a"]},
        subject="d7",
        dataschema="https://schemas.example/t/v1",
        extensions={"seq": 5, "vip": True, "partitionkey": "d7"},
    )
    back = from_json(to_json(event))
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == event.get_data()


def test_binary_data_uses_data_base64() -> None:
    """Bytes data is written as data_base64 and read back as bytes."""
    event = _factory().new("t", "/s", b"\x00\xff", datacontenttype="application/octet-stream")
    assert b'"data_base64":"AP8="' in to_json(event)
    assert from_json(to_json(event)).get_data() == b"\x00\xff"


def test_interoperates_with_the_sdk_json_format() -> None:
    """What the SDK's JSONFormat writes we read, and what we write the SDK reads."""
    sdk = JSONFormat()
    event = _factory().new("t", "/s", {"a": 1}, extensions={"ext": "v"})
    ours = from_json(sdk.write(event))
    theirs = sdk.read(None, to_json(event))
    assert ours.get_attributes() == event.get_attributes() == theirs.get_attributes()
    assert ours.get_data() == theirs.get_data() == {"a": 1}


def test_trusted_build_matches_the_sdk_constructor() -> None:
    """Events we build equal those the SDK's own constructor builds from the same input."""
    event = _factory().new("t", "/s", {"a": 1}, extensions={"n": 3})
    sdk = CloudEvent(dict(event.get_attributes()), event.get_data())
    assert sdk.get_attributes() == event.get_attributes()
    assert sdk.get_data() == event.get_data()


def test_malformed_json_is_a_validation_error() -> None:
    """Non-JSON and invalid events are rejected with the field named."""
    with pytest.raises(EventValidationError, match="not JSON"):
        from_json(b"{nope")
    with pytest.raises(EventValidationError) as info:
        from_json(b'{"specversion":"1.0","id":"1","source":"/s"}')
    assert [p.field for p in info.value.problems] == ["type"]
    with pytest.raises(EventValidationError, match="RFC 3339"):
        from_json(b'{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"yesterday"}')


def test_batch_round_trip() -> None:
    """A JSON batch decodes to the same events in the same order."""
    factory = _factory()
    events = [factory.new("t", "/s", {"i": i}) for i in range(3)]
    back = from_json_batch(to_json_batch(events))
    assert [e.get_data() for e in back] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_http_binary_round_trip() -> None:
    """HTTP binary mode carries attributes in ce- headers and data in the body."""
    event = _factory().new("t", "/s", {"a": 1}, subject="x y", extensions={"ext": "v"})
    headers, body = to_http_binary(event)
    assert headers["ce-type"] == "t" and headers["content-type"] == "application/json"
    assert headers["ce-subject"] == "x%20y"
    back = from_http_binary({k.upper(): v for k, v in headers.items()}, body)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == {"a": 1}


def test_attributes_of_uses_canonical_strings() -> None:
    """Filter views carry time as RFC 3339 and keep ints and bools typed."""
    event = _factory().new("t", "/s", extensions={"n": 1, "flag": False})
    attrs = attributes_of(event)
    assert attrs["time"] == "2026-03-01T12:00:00Z"
    assert attrs["n"] == 1 and attrs["flag"] is False


@pytest.mark.parametrize("payload", [b"", b"   ", b'{"id": "1"} trailing', b"[1,", "\ufeff{}"])
def test_malformed_json_bodies_are_rejected_like_json_loads(payload: bytes | str) -> None:
    """Empty bodies, truncated JSON and trailing data are refused as json.loads would refuse them."""
    with pytest.raises(EventValidationError, match="not JSON"):
        from_json(payload)


def test_trailing_whitespace_is_accepted() -> None:
    """Whitespace after the object is allowed, as in json.loads."""
    event = _factory().new("t", "/s", {"a": 1})
    assert from_json(to_json(event) + b" \n").get_data() == {"a": 1}
