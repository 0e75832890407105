"""One data model: the same event arrives with the same data, of the same Python type, everywhere.

The rule (docs/data-model.md): JSON values (dict, list, str, int, float,
bool) come back as the same value when the content type is JSON or absent;
bytes come back as bytes whatever the content type; a str stays a str under
any content type; no data stays None. Checked over data kinds x content modes
x every adapter of the contract suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from polybus.core.contract import Adapter, DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.events import build_event, validate_attributes
from tests.contract.helpers import receive_n

FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: (name, data, datacontenttype or None): every kind of data an event may carry.
KINDS: list[tuple[str, Any, str | None]] = [
    ("dict", {"order": 42, "items": ["a", "b"], "total": 9.5, "ok": True, "none": None}, None),
    ("list", [1, "two", {"three": 3.0}], None),
    ("str", "hello", None),
    ("json-looking-str", '{"a": 1}', None),
    ("int", 42, None),
    ("float", 9.5, None),
    ("bool", False, None),
    ("zero", 0, None),
    ("empty-str", "", None),
    ("no-data", None, None),
    ("dict-json", {"a": [1, 2]}, "application/json"),
    ("str-json", "quoted", "application/json"),
    ("dict-plus-json", {"b": 1}, "application/vnd.shop+json"),
    ("str-text", "plain text", "text/plain"),
    ("str-csv", "a,b\n1,2\n", "text/csv; charset=utf-8"),
    ("str-octet", "text under a binary type", "application/octet-stream"),
    ("empty-text", "", "text/plain"),
    ("bytes", bytes(range(256)), None),
    ("json-bytes", b'{"a": 1}', None),
    ("bytes-octet", b"\x00\x01\xfe\xff", "application/octet-stream"),
    ("bytes-json", b'{"not": "parsed"}', "application/json"),
    ("bytes-text", b"raw text bytes", "text/plain"),
    ("empty-bytes", b"", "application/octet-stream"),
]


def _event(index: int, data: Any, content_type: str | None) -> Any:
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"kind-{index}",
        "source": "/data-model",
        "type": "com.example.data",
        "time": FIXED_TIME,
    }
    if content_type is not None:
        attrs["datacontenttype"] = content_type
    validate_attributes(attrs, data)
    return build_event(attrs, data)


def _round_trip(adapter: Adapter, names: Callable[[str], str]) -> dict[str, Any]:
    """Publish one event per kind and return what arrived, by kind name."""
    topic, sub = names("data"), names("sub")
    retry = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)
    adapter.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy(retry=retry)))
    events = [_event(i, data, ct) for i, (_, data, ct) in enumerate(KINDS)]
    adapter.publish(topic, events)
    deliveries = receive_n(adapter, sub, len(events))
    arrived: dict[str, Any] = {}
    for delivery in deliveries:
        index = int(delivery.event.get_id().split("-")[1])
        arrived[KINDS[index][0]] = delivery.event.get_data()
        delivery.ack()
    return arrived


#: Kinds the Avro event formats (core/codecs) cannot yet tell apart: their data union
#: carries JSON as bytes and reads bytes back by the content type. Documented in
#: docs/data-model.md ("Binary event formats"); to be removed when the codecs keep them.
AVRO_GAPS = frozenset({"bytes-text", "str-octet", "json-bytes", "bytes-json"})


def _expected() -> dict[str, Any]:
    return {name: data for name, data, _ in KINDS}


def _without(values: dict[str, Any], kinds: frozenset[str]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name not in kinds}


def _typed(values: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Values with their exact type, so 1 == True and 0 == False do not hide a change."""
    return {name: (type(value).__name__, value) for name, value in values.items()}


def test_every_kind_of_data_arrives_as_published(
    adapter: Adapter, adapter_id: str, names: Callable[[str], str]
) -> None:
    """Each data kind arrives with the same value and Python type on this adapter."""
    gaps = AVRO_GAPS if adapter_id.endswith("avro") else frozenset()
    arrived = _round_trip(adapter, names)
    assert set(arrived) == set(_expected())
    assert _typed(_without(arrived, gaps)) == _typed(_without(_expected(), gaps))


@pytest.fixture(params=["binary", "structured"])
def gcp_mode_adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """A gcp adapter publishing in one content mode (the suite's adapter uses the default)."""
    from polybus.adapters.gcp.plugin import make_adapter

    emulator = request.getfixturevalue("gcp_emulator")
    adapter = make_adapter(
        {**emulator.settings(), "project": "polybus-test", "content_mode": request.param}
    )
    yield adapter
    adapter.close()


def test_every_kind_of_data_arrives_in_both_pubsub_content_modes(
    gcp_mode_adapter: Adapter, names: Callable[[str], str]
) -> None:
    """Pub/Sub's binary and structured modes deliver the same data as every other adapter."""
    assert _typed(_round_trip(gcp_mode_adapter, names)) == _typed(_expected())
