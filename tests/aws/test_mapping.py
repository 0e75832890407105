"""CloudEvent <-> EventBridge mapping: entries going out, envelopes coming back, lossless."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.adapters.aws.mapping import event_size, from_envelope, from_sqs_body, to_entry
from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory
from polybus.core.formats import from_dict, to_dict

T0 = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "evt-1", clock=lambda: T0)


def _every_kind() -> list[CloudEvent]:
    """Events covering every attribute type, extensions, and JSON / text / binary / no data."""
    extensions: dict[str, Any] = {
        "partitionkey": "cust-7",  # String
        "priority": -2147483648,  # Integer (int32 minimum)
        "vip": False,  # Boolean
        "callback": "https://example.com/hooks?a=1&b=é",  # URI
        "relref": "../orders/42#x",  # URI-reference
        "seenat": datetime(2025, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "blob": b"\x00\xff binary",  # Binary
    }
    return [
        FACTORY.new(
            "com.shop.order.placed",
            "/shop/eu",
            {"order": 42, "items": ["a", "ü"], "total": 9.5, "nested": {"ok": True, "n": None}},
            subject="orders/42",
            dataschema="https://schemas.example.com/order.json",
            extensions=extensions,
        ),
        FACTORY.new("com.example.list", "urn:example:list", [1, "two", {"three": 3}]),
        FACTORY.new("com.example.text", "/t", "plain text ✓", datacontenttype="text/plain"),
        FACTORY.new(
            "com.example.blob", "/b", bytes(range(256)), datacontenttype="application/octet-stream"
        ),
        FACTORY.new("com.example.empty", "/e"),
        FACTORY.new(
            "com.example.offset",
            "/o",
            {"x": 1},
            time=datetime(2024, 2, 29, 23, 59, 59, 1000, tzinfo=timezone(timedelta(hours=-7))),
        ),
    ]


def _expected(event: CloudEvent) -> CloudEvent:
    """The event as the CloudEvents JSON format carries it (Timestamp/Binary extensions as strings)."""
    return from_dict(to_dict(event))


def _envelope(entry_request: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The envelope EventBridge hands an SQS target for this entry (AWS's documented shape)."""
    return {
        "version": "0",
        "id": "5e7a8f0c-aws-id",
        "detail-type": entry_request["DetailType"],
        "source": entry_request["Source"],
        "account": "123456789012",
        "time": "2026-03-04T05:06:07Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(entry_request["Detail"]),
        **extra,
    }


@pytest.mark.parametrize("event", _every_kind(), ids=lambda e: e.get_type())
def test_entry_carries_source_type_time_and_whole_event(event: CloudEvent) -> None:
    """Source, DetailType and Time come from the event; Detail is the whole JSON-format event."""
    entry = to_entry(event, "polybus-orders")
    request = entry.request
    assert request["Source"] == event.get_source()
    assert request["DetailType"] == event.get_type()
    assert request["Time"] == event.get_time()
    assert request["EventBusName"] == "polybus-orders"
    assert json.loads(request["Detail"]) == to_dict(event)
    assert entry.event_id == event.get_id()


@pytest.mark.parametrize("event", _every_kind(), ids=lambda e: e.get_type())
def test_envelope_decodes_to_identical_event(event: CloudEvent) -> None:
    """An EventBridge envelope in an SQS body decodes to the published event, attribute for attribute."""
    body = json.dumps(_envelope(to_entry(event, "bus").request))
    decoded, envelope = from_sqs_body(body)
    expected = _expected(event)
    assert decoded.get_attributes() == expected.get_attributes()
    assert decoded.get_data() == event.get_data()
    assert type(decoded.get_data()) is type(event.get_data())
    assert envelope["account"] == "123456789012"


def test_typed_attributes_keep_their_types() -> None:
    """String, Integer, Boolean, URI and time attributes come back with their Python types."""
    event = _every_kind()[0]
    decoded = from_envelope(_envelope(to_entry(event, "bus").request))
    attrs = decoded.get_attributes()
    assert attrs["priority"] == -2147483648 and type(attrs["priority"]) is int
    assert attrs["vip"] is False
    assert attrs["callback"] == "https://example.com/hooks?a=1&b=é"
    assert attrs["time"] == T0 and attrs["time"].tzinfo is not None
    # Timestamp and Binary extensions travel as canonical strings, as in the JSON format.
    assert attrs["seenat"] == "2025-01-01T00:00:00+05:30"
    assert attrs["blob"] == "AP8gYmluYXJ5"


def test_entry_size_counts_as_aws_documents() -> None:
    """Size = 14 for Time + UTF-8 bytes of Source, DetailType, Detail (multi-byte chars counted as bytes)."""
    event = FACTORY.new("tÿpe", "/sourcé", {"k": "€"})
    entry = to_entry(event, "bus")
    request = entry.request
    by_hand = (
        14 + len("/sourcé".encode()) + len("tÿpe".encode()) + len(request["Detail"].encode("utf-8"))
    )
    assert entry.size == event_size(event) == by_hand
    assert by_hand > 14 + len("/sourcé") + len("tÿpe") + len(request["Detail"])


def test_bare_structured_event_body_decodes() -> None:
    """A dead letter holding a bare structured CloudEvent (no envelope) still decodes."""
    event = _every_kind()[1]
    decoded, envelope = from_sqs_body(json.dumps(to_dict(event)))
    assert envelope == {}
    assert decoded.get_attributes() == _expected(event).get_attributes()


def test_foreign_eventbridge_event_becomes_a_cloudevent() -> None:
    """An envelope whose detail is not a CloudEvent (e.g. an AWS service event) is read as one."""
    envelope = {
        "version": "0",
        "id": "aws-1",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"instance-id": "i-1", "state": "running"},
    }
    event = from_envelope(envelope)
    assert event.get_id() == "aws-1"
    assert event.get_source() == "aws.ec2"
    assert event.get_type() == "EC2 Instance State-change Notification"
    assert event.get_time() == datetime(2026, 1, 1, tzinfo=UTC)
    assert event.get_data() == {"instance-id": "i-1", "state": "running"}


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"hello": "world"}'])
def test_undecodable_body_is_a_validation_error(body: str) -> None:
    """Bodies that are neither an envelope nor a CloudEvent raise EventValidationError."""
    with pytest.raises(EventValidationError):
        from_sqs_body(body)


def test_every_kind_round_trips_through_moto(
    aws_adapter_factory: Callable[..., AwsAdapter], unique: Callable[[str], str]
) -> None:
    """Through real PutEvents, a rule and an SQS target, every event arrives identical."""
    adapter = aws_adapter_factory()
    topic, sub = unique("mapping"), unique("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    counter = iter(range(100))
    factory = EventFactory(id_factory=lambda: f"evt-{next(counter)}", clock=lambda: T0)
    events = [
        factory.new(e.get_type(), e.get_source(), e.get_data(), **_kwargs(e)) for e in _every_kind()
    ]
    adapter.publish(topic, events)
    got = {d.event.get_id(): d for d in adapter.receive(sub, 10, 5.0)}
    assert sorted(got) == sorted(e.get_id() for e in events)
    for event in events:
        delivered = got[event.get_id()].event
        assert delivered.get_attributes() == _expected(event).get_attributes()
        assert delivered.get_data() == event.get_data()
        got[event.get_id()].ack()


def _kwargs(event: CloudEvent) -> dict[str, Any]:
    attrs = dict(event.get_attributes())
    out: dict[str, Any] = {"time": attrs.pop("time")}
    for name in ("subject", "datacontenttype", "dataschema"):
        if name in attrs:
            out[name] = attrs.pop(name)
    for name in ("id", "source", "type", "specversion"):
        attrs.pop(name)
    if attrs:
        out["extensions"] = attrs
    return out
