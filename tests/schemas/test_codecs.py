"""CloudEvents Avro and Protobuf formats: round trips, spec wire shape, errors, and Pub/Sub structured carriage."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest

from polybus.core.codecs import decode, encode, event_format
from polybus.core.codecs.avro_format import CLOUDEVENT_AVSC
from polybus.core.codecs.protobuf_format import (
    from_protobuf_batch,
    message_classes,
    to_protobuf_batch,
)
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory
from tests.gcp.helpers import PubSubClients, pull_all

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)

DATA: list[tuple[Any, dict[str, Any]]] = [
    ({"deviceId": "d1", "temperature": 21.5, "location": {"lat": 1.5, "lon": 2.0}}, {}),
    ({"orderId": "o1", "items": [{"sku": "a", "qty": 2}], "tags": ["x"]}, {}),
    ([{"a": 1}, {"b": {"c": {"d": True}}}], {}),
    ("plain text", {"datacontenttype": "text/plain"}),
    (b"\x00\xffbinary", {"datacontenttype": "application/octet-stream"}),
    (None, {}),
    (42, {}),
]


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json"])
@pytest.mark.parametrize(("data", "extra"), DATA, ids=[f"data{i}" for i in range(len(DATA))])
def test_round_trip_keeps_attributes_and_data(fmt: str, data: Any, extra: dict[str, Any]) -> None:
    """Every attribute type and every data shape survive encode then decode."""
    event = FACTORY.new(
        "com.example.t",
        "/s",
        data,
        subject="sub",
        dataschema="urn:polybus:schema:com.example.t:1",
        extensions={"flag": True, "count": 7, "raw": b"\x01", "partitionkey": "k"},
        **extra,
    )
    content_type, body = encode(event, fmt)
    back = decode(content_type, body)
    expected = dict(event.get_attributes())
    if fmt == "json":  # the JSON format has no binary type: bytes extensions come back as base64
        expected["raw"] = "AQ=="
    assert back.get_attributes() == expected
    assert back.get_data() == data


def test_content_types_and_lookup() -> None:
    """Formats are found by name or content type, parameters ignored; unknown ones are named."""
    assert event_format("application/cloudevents+avro; charset=x").name == "avro"
    assert event_format("protobuf").content_type == "application/cloudevents+protobuf"
    with pytest.raises(EventValidationError, match="unknown event format"):
        event_format("application/cloudevents+xml")


def test_avro_wire_is_the_spec_schema() -> None:
    """A generic Avro reader with the spec's cloudevents.avsc reads our bytes: attribute map and data."""
    event = FACTORY.new("com.example.t", "/s", {"n": 1, "o": {"x": "y"}})
    _, body = encode(event, "avro")
    record = fastavro.schemaless_reader(
        io.BytesIO(body), fastavro.parse_schema(CLOUDEVENT_AVSC), None
    )
    assert record["attribute"]["time"] == "2024-05-01T12:00:00.123456Z"
    assert record["attribute"]["specversion"] == "1.0"
    assert record["data"] == {"n": 1.0, "o": {"value": {"x": "y"}}}


def test_protobuf_wire_uses_the_spec_fields() -> None:
    """Required attributes in fields 1-4, time as ce_timestamp, dataschema as ce_uri, JSON in text_data."""
    event = FACTORY.new("com.example.t", "/s", {"n": 1}, dataschema="https://x/s.json")
    _, body = encode(event, "protobuf")
    msg = message_classes()[0].FromString(body)
    assert (msg.id, msg.source, msg.spec_version, msg.type) == (
        "id-1",
        "/s",
        "1.0",
        "com.example.t",
    )
    assert msg.attributes["time"].ce_timestamp.nanos == 123456000
    assert msg.attributes["dataschema"].ce_uri == "https://x/s.json"
    assert msg.text_data == '{"n":1}'
    assert message_classes()[0].DESCRIPTOR.full_name == "io.cloudevents.v1.CloudEvent"


def test_protobuf_time_is_normalised_to_utc() -> None:
    """A Timestamp keeps no offset: the same instant comes back in UTC."""
    local = T0.astimezone(timezone(timedelta(hours=2)))
    back = decode(*encode(FACTORY.new("t", "/s", time=local), "protobuf"))
    assert back.get_time() == local and back.get_time().utcoffset() == timedelta(0)


def test_protobuf_batch_round_trip() -> None:
    """CloudEventBatch carries several events."""
    events = [FACTORY.new("t", "/s", {"i": i}, id=str(i)) for i in range(3)]
    back = from_protobuf_batch(to_protobuf_batch(events))
    assert [(e.get_id(), e.get_data()) for e in back] == [(str(i), {"i": i}) for i in range(3)]


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_junk_and_missing_attributes_are_validation_errors(fmt: str) -> None:
    """Bytes that are no event, or an event without required attributes, raise EventValidationError."""
    with pytest.raises(EventValidationError):
        decode(f"application/cloudevents+{fmt}", b"\xff\xfe\xfd garbage")
    empty = message_classes()[0]().SerializeToString() if fmt == "protobuf" else b"\x00\x02"
    with pytest.raises(EventValidationError) as info:
        decode(f"application/cloudevents+{fmt}", empty)
    assert {"id", "source", "type"} <= {p.field for p in info.value.problems}


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_pubsub_carries_structured_binary_formats(fmt: str, pubsub: PubSubClients) -> None:
    """Pub/Sub structured mode with an Avro or Protobuf content type: real client, emulator, same event back."""
    topic = f"projects/{pubsub.project}/topics/codec-{fmt}-{pubsub.suffix}"
    sub = f"projects/{pubsub.project}/subscriptions/codec-{fmt}-{pubsub.suffix}"
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    event = FACTORY.new("com.example.t", "/s", {"deviceId": "d1", "t": 20.5})
    content_type, body = encode(event, fmt)
    pubsub.publisher.publish(topic, body, **{"content-type": content_type}).result(timeout=10)
    [received] = pull_all(pubsub.subscriber, sub, expected=1)
    back = decode(received.message.attributes["content-type"], received.message.data)
    assert back.get_attributes() == event.get_attributes() and back.get_data() == event.get_data()
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[received.ack_id])
