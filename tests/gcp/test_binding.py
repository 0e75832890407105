"""The CloudEvents Pub/Sub binding, from the spec's examples (pubsub-protocol-binding.md 3.1.4, 3.2.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.gcp import mapping
from polybus.core.errors import EventValidationError
from polybus.core.events import new_event
from tests.contract.helpers import portable_view

SPEC_TIME = datetime(2020, 3, 10, 3, 56, 24, tzinfo=UTC)


def _spec_event() -> CloudEvent:
    return new_event(
        "com.example.someevent",
        "/mycontext/subcontext",
        {"answer": 42},
        id="1234-1234-1234",
        time=SPEC_TIME,
        datacontenttype="application/json; charset=utf-8",
    )


def test_binary_mode_matches_the_spec_example() -> None:
    """Binary mode: ce-* attributes in canonical form, datacontenttype as content-type, data as is."""
    data, attributes = mapping.to_message(_spec_event())
    assert attributes == {
        "ce-specversion": "1.0",
        "ce-type": "com.example.someevent",
        "ce-time": "2020-03-10T03:56:24Z",
        "ce-id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "content-type": "application/json; charset=utf-8",
    }
    assert json.loads(data) == {"answer": 42}


def test_reading_the_spec_binary_example_with_ce_datacontenttype() -> None:
    """The spec's example carries ce-datacontenttype; it is read as datacontenttype."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-type": "com.example.someevent",
        "ce-time": "2020-03-10T03:56:24Z",
        "ce-id": "1234-1234-1234",
        "ce-source": "/mycontext/subcontext",
        "ce-datacontenttype": "application/json; charset=utf-8",
    }
    event = mapping.from_message(b'{"answer": 42}', attributes)
    assert event.get_datacontenttype() == "application/json; charset=utf-8"
    assert event.get_time() == SPEC_TIME
    assert event.get_data() == {"answer": 42}


def test_reading_the_spec_structured_example() -> None:
    """Content-Type application/cloudevents+json means structured: the payload is the whole event."""
    payload = json.dumps(
        {
            "specversion": "1.0",
            "type": "com.example.someevent",
            "time": "2018-04-05T03:56:24Z",
            "id": "1234-1234-1234",
            "source": "/mycontext/subcontext",
            "datacontenttype": "application/json; charset=utf-8",
            "data": {"answer": 42},
        }
    ).encode()
    attributes = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    event = mapping.from_message(payload, attributes)
    assert event.get_id() == "1234-1234-1234"
    assert event.get_data() == {"answer": 42}
    assert event.get_time() == datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC)


def test_structured_mode_writes_the_json_format_and_filterable_attributes() -> None:
    """Structured mode: the event format's content type, JSON payload, plus ce-* for filters."""
    event = _spec_event()
    data, attributes = mapping.to_message(event, "structured")
    assert attributes["content-type"] == "application/cloudevents+json; charset=UTF-8"
    assert attributes["ce-type"] == "com.example.someevent"
    assert attributes["ce-datacontenttype"] == "application/json; charset=utf-8"
    assert json.loads(data)["data"] == {"answer": 42}
    assert portable_view(mapping.from_message(data, attributes)) == portable_view(event)


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ({"n": 1, "items": ["a"]}, None),
        ("just a string", None),
        (bytes(range(256)), "application/octet-stream"),
        ("plain text ü", "text/plain; charset=utf-8"),
        (None, None),
    ],
)
def test_round_trip_preserves_the_portable_view(
    mode: str, data: object, content_type: str | None
) -> None:
    """Attributes (as canonical strings) and data survive both modes for JSON, bytes, text, none."""
    extensions = {"partitionkey": "k", "priority": 3, "vip": True}
    kwargs = {"datacontenttype": content_type} if content_type else {}
    event = new_event("com.example.x", "/x", data, subject="s", extensions=extensions, **kwargs)
    payload, attributes = mapping.to_message(event, mode)
    back = mapping.from_message(payload, attributes)
    assert portable_view(back) == portable_view(event)


def test_attribute_names_are_read_case_insensitively() -> None:
    """Content-Type and CE-Type style names are read like their lower-case forms."""
    attributes = {
        "CE-SpecVersion": "1.0",
        "Ce-Id": "1",
        "ce-source": "/s",
        "CE-TYPE": "t",
        "Content-Type": "text/plain",
    }
    event = mapping.from_message(b"hello", attributes)
    assert (event.get_id(), event.get_type(), event.get_data()) == ("1", "t", "hello")


def test_unknown_structured_format_is_read_as_binary() -> None:
    """A structured format we do not know (CBOR) is not readable here; the spec lets it pass as binary."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "t",
        "content-type": "application/cloudevents+cbor",
    }
    event = mapping.from_message(b"\x00\x01", attributes)
    assert event.get_data() == b"\x00\x01"
    assert event.get_datacontenttype() == "application/cloudevents+cbor"


def test_oversized_attribute_falls_back_to_structured_mode() -> None:
    """An attribute over Pub/Sub's 1,024-byte value limit cannot go binary: structured is used."""
    event = new_event("com.example.x", "/x", {"a": 1}, subject="s" * 2000)
    data, attributes = mapping.to_message(event, "binary")
    assert attributes == {"content-type": mapping.STRUCTURED_CONTENT_TYPE}
    assert mapping.from_message(data, attributes).get_subject() == "s" * 2000


def test_messages_that_are_not_cloudevents_are_refused() -> None:
    """No ce-specversion/ce-id, or a malformed ce-time, raise EventValidationError."""
    with pytest.raises(EventValidationError):
        mapping.from_message(b"x", {"ce-type": "t"})
    with pytest.raises(EventValidationError):
        mapping.from_message(
            b"x",
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "/s",
                "ce-type": "t",
                "ce-time": "yesterday",
            },
        )


@pytest.mark.parametrize("event_format", ["avro", "avro-compact", "protobuf"])
def test_structured_mode_carries_the_binary_event_formats(event_format: str) -> None:
    """Structured mode with a binary event format: its content type, its bytes, ce-* beside, read back equal."""
    event = _spec_event()
    data, attributes = mapping.to_message(event, "structured", event_format)
    assert attributes["content-type"] == f"application/cloudevents+{event_format}"
    assert attributes["ce-type"] == "com.example.someevent"
    assert not data.startswith(b"{")
    back = mapping.from_message(data, attributes)
    assert portable_view(back) == portable_view(event)
    assert back.get_data() == event.get_data()
