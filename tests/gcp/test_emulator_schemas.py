"""Schemas with revisions, validation on publish, and exactly-once delivery, through the real client."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.types import Encoding, Schema, SchemaView

from tests.gcp.helpers import PubSubClients, pull_all

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "int"}],
}
ORDER_V2 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "int"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
}

BAD_TYPE = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "no-such-type"}]}


@pytest.fixture
def schemas(pubsub: PubSubClients) -> pubsub_v1.SchemaServiceClient:
    """The real SchemaServiceClient against the emulator (PUBSUB_EMULATOR_HOST is set)."""
    return pubsub_v1.SchemaServiceClient()


def _avro(definition: dict[str, Any]) -> Schema:
    return Schema(type_=Schema.Type.AVRO, definition=json.dumps(definition))


def test_schema_revisions_commit_rollback_and_delete(
    pubsub: PubSubClients, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    """Create, commit a second revision, list newest first, roll back, delete a revision."""
    parent = f"projects/{pubsub.project}"
    created = schemas.create_schema(
        parent=parent, schema=_avro(ORDER_V1), schema_id=f"order-{pubsub.suffix}"
    )
    name = created.name
    assert created.revision_id and name.endswith(f"order-{pubsub.suffix}")
    second = schemas.commit_schema(name=name, schema=_avro(ORDER_V2))
    revisions = list(schemas.list_schema_revisions(name=name))
    assert [r.revision_id for r in revisions] == [second.revision_id, created.revision_id]
    assert json.loads(schemas.get_schema(name=name).definition) == ORDER_V2
    first_again = schemas.get_schema(name=f"{name}@{created.revision_id}")
    assert json.loads(first_again.definition) == ORDER_V1
    basic = schemas.get_schema(request={"name": name, "view": SchemaView.BASIC})
    assert basic.definition == ""
    rolled = schemas.rollback_schema(name=name, revision_id=created.revision_id)
    assert json.loads(rolled.definition) == ORDER_V1 and rolled.revision_id != created.revision_id
    schemas.delete_schema_revision(name=f"{name}@{second.revision_id}")
    assert len(list(schemas.list_schema_revisions(name=name))) == 2
    listed = [s.name for s in schemas.list_schemas(parent=parent)]
    assert name in listed
    schemas.delete_schema(name=name)
    with pytest.raises(exceptions.NotFound):
        schemas.get_schema(name=name)


def test_schema_validation_refuses_bad_definitions_and_messages(
    pubsub: PubSubClients, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    """ValidateSchema and ValidateMessage say INVALID_ARGUMENT naming the problem."""
    parent = f"projects/{pubsub.project}"
    with pytest.raises(exceptions.InvalidArgument, match="Invalid AVRO"):
        schemas.validate_schema(parent=parent, schema=_avro(BAD_TYPE))
    schemas.validate_schema(parent=parent, schema=_avro(ORDER_V1))
    good = json.dumps({"id": "o1", "amount": 3}).encode()
    schemas.validate_message(
        request={"parent": parent, "schema": _avro(ORDER_V1), "message": good, "encoding": Encoding.JSON}
    )
    with pytest.raises(exceptions.InvalidArgument, match="failed schema validation"):
        schemas.validate_message(
            request={
                "parent": parent,
                "schema": _avro(ORDER_V1),
                "message": b'{"id": "o1"}',
                "encoding": Encoding.JSON,
            }
        )
    two_messages = Schema(
        type_=Schema.Type.PROTOCOL_BUFFER,
        definition='syntax = "proto3"; message A { string x = 1; } message B { int32 y = 1; }',
    )
    with pytest.raises(exceptions.InvalidArgument, match="exactly one"):
        schemas.validate_schema(parent=parent, schema=two_messages)
    broken = Schema(type_=Schema.Type.PROTOCOL_BUFFER, definition="message { nope")
    with pytest.raises(exceptions.InvalidArgument, match="PROTOCOL_BUFFER"):
        schemas.create_schema(parent=parent, schema=broken, schema_id=f"p-{pubsub.suffix}")


ORDER_PROTO = """
syntax = "proto3";
package shop;
message Order {
  string id = 1;
  int32 amount = 2;
}
"""


def test_protobuf_schema_validates_binary_and_json_messages(
    pubsub: PubSubClients, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    """A .proto schema is compiled; BINARY wire-format and JSON-mapped messages are checked on publish."""
    parent = f"projects/{pubsub.project}"
    schema = schemas.create_schema(
        parent=parent,
        schema=Schema(type_=Schema.Type.PROTOCOL_BUFFER, definition=ORDER_PROTO),
        schema_id=f"proto-order-{pubsub.suffix}",
    )
    binary_topic, json_topic = pubsub.topic("proto-bin"), pubsub.topic("proto-json")
    for topic, encoding in ((binary_topic, Encoding.BINARY), (json_topic, Encoding.JSON)):
        pubsub.publisher.create_topic(
            request={"name": topic, "schema_settings": {"schema": schema.name, "encoding": encoding}}
        )
    order = b"\x0a\x02o1\x10\x03"  # Order{id: "o1", amount: 3} on the wire: field 1 "o1", field 2 = 3
    pubsub.publisher.publish(binary_topic, order).result()
    with pytest.raises(exceptions.InvalidArgument, match="failed schema validation"):
        pubsub.publisher.publish(binary_topic, b"\xff\xff\xff").result()
    pubsub.publisher.publish(json_topic, json.dumps({"id": "o1", "amount": 3}).encode()).result()
    with pytest.raises(exceptions.InvalidArgument, match="failed schema validation"):
        pubsub.publisher.publish(json_topic, json.dumps({"id": "o1", "colour": "red"}).encode()).result()


def test_topic_with_schema_validates_every_publish(
    pubsub: PubSubClients, schemas: pubsub_v1.SchemaServiceClient
) -> None:
    """Conforming messages are delivered with googclient_schema* attributes; others are refused."""
    parent = f"projects/{pubsub.project}"
    schema = schemas.create_schema(
        parent=parent, schema=_avro(ORDER_V1), schema_id=f"topic-order-{pubsub.suffix}"
    )
    topic, sub = pubsub.topic("typed"), pubsub.subscription("typed")
    pubsub.publisher.create_topic(
        request={"name": topic, "schema_settings": {"schema": schema.name, "encoding": Encoding.JSON}}
    )
    pubsub.subscriber.create_subscription(name=sub, topic=topic)
    good = json.dumps({"id": "o1", "amount": 3}).encode()
    pubsub.publisher.publish(topic, good).result()
    with pytest.raises(exceptions.InvalidArgument, match="failed schema validation"):
        pubsub.publisher.publish(topic, b'{"id": 7}').result()
    [received] = pull_all(pubsub.subscriber, sub, 1)
    attributes = received.message.attributes
    assert received.message.data == good
    assert attributes["googclient_schemaname"] == schema.name
    assert attributes["googclient_schemaencoding"] == "JSON"
    assert attributes["googclient_schemarevisionid"] == schema.revision_id
    with pytest.raises(exceptions.NotFound):
        pubsub.publisher.create_topic(
            request={
                "name": pubsub.topic("typed-absent"),
                "schema_settings": {"schema": f"{parent}/schemas/absent", "encoding": Encoding.JSON},
            }
        )


def test_exactly_once_reports_acks_of_expired_leases(pubsub: PubSubClients) -> None:
    """With exactly-once delivery an ack after the lease expired fails with INVALID_ACK_ID info."""
    topic, sub = pubsub.topic("eod"), pubsub.subscription("eod")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(
        request={
            "name": sub,
            "topic": topic,
            "ack_deadline_seconds": 10,
            "enable_exactly_once_delivery": True,
        }
    )
    pubsub.publisher.publish(topic, b"once").result()
    [first] = pull_all(pubsub.subscriber, sub, 1)
    # shorten this lease to 1 s, let it expire: its ack id is no longer valid
    pubsub.subscriber.modify_ack_deadline(subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=1)
    time.sleep(1.2)
    with pytest.raises(exceptions.InvalidArgument) as failure:
        pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])
    assert "invalid" in str(failure.value)
    [second] = pull_all(pubsub.subscriber, sub, 1)
    assert second.message.data == b"once" and second.ack_id != first.ack_id
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[second.ack_id])  # valid: succeeds
    with pytest.raises(exceptions.InvalidArgument):  # acked already: a second ack is reported
        pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[second.ack_id])


def test_exactly_once_ack_future_of_the_streaming_client_reports_success(
    pubsub: PubSubClients,
) -> None:
    """The streaming client sees exactly-once enabled: ack_with_response() resolves to SUCCESS."""
    from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeStatus

    topic, sub = pubsub.topic("eod-stream"), pubsub.subscription("eod-stream")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(
        request={"name": sub, "topic": topic, "enable_exactly_once_delivery": True}
    )
    pubsub.publisher.publish(topic, b"x").result()
    results: list[Any] = []

    def callback(message: Any) -> None:
        results.append(message.ack_with_response().result(timeout=10))

    future = pubsub.subscriber.subscribe(sub, callback)
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        time.sleep(0.05)
    future.cancel()
    future.result(timeout=10)
    assert results == [AcknowledgeStatus.SUCCESS]
