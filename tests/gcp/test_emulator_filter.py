"""The Pub/Sub filter language: grammar vectors, errors, server-side filtering via the client."""

from __future__ import annotations

import pytest

from polybus.adapters.gcp.emulator.filter import FilterSyntaxError, compile_pubsub_filter
from tests.gcp.helpers import PubSubClients, pull_all

# The attribute sets and expectations of google-cloud-go pubsub/pstest/filtering_test.go.
ATTRS = {
    1: {"lang": "en", "name": "com", "timezone": "UTC"},
    2: {"lang": "en", "name": "net", "timezone": "UTC"},
    3: {"lang": "en", "name": "org", "timezone": "UTC"},
    4: {"lang": "cn", "name": "com", "timezone": "UTC"},
    5: {"lang": "cn", "name": "net", "timezone": "UTC"},
    6: {"lang": "cn", "name": "org", "timezone": "UTC"},
    7: {"lang": "jp", "name": "co", "timezone": "UTC"},
    8: {"lang": "jp", "timezone": "UTC"},
    9: {"name": "com", "timezone": "UTC"},
    10: {"lang": "jp", "\u307f\u3093\u306a": "dummy1"},
    11: {"\u307f\u3093\u306a": "dummy2"},
    12: {"name": "com", "\u307f\u3093\u306a": "dummy3"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('attributes.name = "com"', [1, 4, 9, 12]),
        ('attributes.name != "com"', [2, 3, 5, 6, 7, 8, 10, 11]),
        ('hasPrefix(attributes.name, "co")', [1, 4, 7, 9, 12]),
        ("attributes:name", [1, 2, 3, 4, 5, 6, 7, 9, 12]),
        ("NOT attributes:name", [8, 10, 11]),
        ('(NOT attributes:name) OR attributes.name = "co"', [7, 8, 10, 11]),
        ('NOT (attributes:name OR attributes.lang = "jp")', [11]),
        ('attributes.name = "com" AND -attributes:"lang"', [9, 12]),
        ('attributes:"\u307f\u3093\u306a"', [10, 11, 12]),
        ('attributes.lang = "en" AND attributes.name = "com"', [1]),
        ('attributes.lang = "EN"', []),
        ("", list(ATTRS)),
    ],
)
def test_filter_matches_reference_vectors(text: str, expected: list[int]) -> None:
    """Each filter selects exactly the attribute sets the reference implementation selects."""
    predicate = compile_pubsub_filter(text)
    assert [key for key, attrs in ATTRS.items() if predicate(attrs)] == expected


def test_hyphenated_keys_such_as_binding_attributes() -> None:
    """Keys like ce-type (the CloudEvents binding's attribute names) parse unquoted."""
    predicate = compile_pubsub_filter('hasPrefix(attributes.ce-type, "com.shop.")')
    assert predicate({"ce-type": "com.shop.order"})
    assert not predicate({"ce-type": "com.other"})
    assert not predicate({})


@pytest.mark.parametrize(
    "text",
    [
        'attributes.a = "x" AND attributes.b = "y" OR attributes:c',
        "attributes.a = x",
        'data = "x"',
        "attributes.a =",
        "(attributes:a",
        'attributes.a = "x")',
        'hasSuffix(attributes.a, "x")',
        "attributes:" + "k" * 300,
    ],
)
def test_malformed_filters_are_rejected(text: str) -> None:
    """Mixed AND/OR, unquoted values, non-attribute fields, bad nesting, over-long filters fail."""
    with pytest.raises(FilterSyntaxError):
        compile_pubsub_filter(text)


def test_subscription_filter_drops_non_matching_messages(pubsub: PubSubClients) -> None:
    """Only matching messages are delivered; the server acknowledges the rest itself."""
    topic, sub = pubsub.topic("filtered"), pubsub.subscription("filtered")
    pubsub.publisher.create_topic(name=topic)
    pubsub.subscriber.create_subscription(
        request={"name": sub, "topic": topic, "filter": 'attributes.region = "eu"'}
    )
    futures = [
        pubsub.publisher.publish(topic, f"m{i}".encode(), region="eu" if i % 3 == 0 else "us")
        for i in range(9)
    ]
    for future in futures:
        future.result()
    received = pull_all(pubsub.subscriber, sub, expected=3)
    assert sorted(m.message.data for m in received) == [b"m0", b"m3", b"m6"]
    pubsub.subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in received])
    assert pull_all(pubsub.subscriber, sub, expected=1, timeout=0.5) == []
