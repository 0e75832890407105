"""The gcp lag gauge from Cloud Monitoring (timeSeries.list over REST), served by the emulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from polybus.adapters.gcp.adapter import GcpAdapter
from polybus.adapters.gcp.config import parse_config
from polybus.adapters.gcp.emulator import GcpEmulator
from polybus.adapters.gcp.monitoring import (
    OLDEST_AGE,
    UNDELIVERED,
    CloudMonitoring,
    make_session,
    metric_filter,
)
from polybus.adapters.gcp.plugin import make_adapter
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, ConfigError
from polybus.core.events import new_event
from tests.contract.helpers import receive_n

PROJECT = "polybus-test"


@pytest.fixture
def adapter(gcp_emulator: GcpEmulator) -> Iterator[GcpAdapter]:
    """A gcp adapter whose backlog_stats reads the emulator's Cloud Monitoring, not its admin."""
    made = make_adapter(
        {
            **gcp_emulator.settings(),
            "project": PROJECT,
            "monitoring_endpoint": gcp_emulator.monitoring_endpoint,
        }
    )
    assert isinstance(made, GcpAdapter)
    yield made
    made.close()


def _provision(adapter: GcpAdapter) -> tuple[str, str]:
    name = f"lag-{uuid.uuid4().hex[:8]}"
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    adapter.provision(SubscriptionSpec(name, topic, policy=DeliveryPolicy(max_delivery_attempts=5)))
    return name, topic


def _list(emulator: GcpEmulator, filter_text: str, **extra: str) -> requests.Response:
    params = {"filter": filter_text, "interval.endTime": datetime.now(UTC).isoformat(), **extra}
    url = f"{emulator.monitoring_endpoint}/v3/projects/{PROJECT}/timeSeries"
    return requests.get(url, params=params, timeout=10)


def test_backlog_and_oldest_age_come_from_cloud_monitoring(adapter: GcpAdapter) -> None:
    """Publish 3, consume none: num_undelivered_messages 3, oldest age within the elapsed time."""
    name, topic = _provision(adapter)
    assert adapter.backlog_stats(name).undelivered == 0
    before = time.time()
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": n}) for n in range(3)])
    stats = adapter.backlog_stats(name)
    elapsed = time.time() - before
    assert stats.undelivered == 3
    assert stats.in_flight is None  # Monitoring has no lease count
    assert stats.oldest_age is not None and 0 <= stats.oldest_age <= elapsed + 1
    assert stats.dead_letters == 0


def test_a_dead_lettered_poison_event_shows_in_the_dead_letter_depth(adapter: GcpAdapter) -> None:
    """A poison event dead-lettered by its handler: the dead-letter subscription's backlog is 1."""
    name, topic = _provision(adapter)
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": n}) for n in range(2)])
    [poison] = receive_n(adapter, name, 1)
    poison.dead_letter("invalid input")
    stats = adapter.backlog_stats(name)
    assert stats.dead_letters == 1
    assert stats.undelivered == 1  # the other event; leased ones would count too


def test_the_emulator_answers_the_documented_time_series_shape(
    adapter: GcpAdapter, gcp_emulator: GcpEmulator
) -> None:
    """timeSeries[].points[].value.int64Value is a string; the resource names the subscription."""
    name, topic = _provision(adapter)
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": 1})])
    answer = _list(gcp_emulator, metric_filter(UNDELIVERED, name))
    assert answer.status_code == 200
    [series] = answer.json()["timeSeries"]
    assert series["resource"] == {
        "type": "pubsub_subscription",
        "labels": {"project_id": PROJECT, "subscription_id": name},
    }
    assert series["metric"] == {"type": UNDELIVERED}
    [point] = series["points"]
    assert point["value"] == {"int64Value": "1"}
    assert point["interval"]["endTime"].endswith("Z")
    missing = _list(gcp_emulator, metric_filter(OLDEST_AGE, "no-such-subscription"))
    assert missing.status_code == 200 and "timeSeries" not in missing.json()


@pytest.mark.parametrize(
    ("filter_text", "named"),
    [
        ('metric.type = "pubsub.googleapis.com/topic/send_request_count"', "metric.type"),
        ('resource.labels.subscription_id = "x"', "metric.type clause is required"),
        (f'metric.type = "{UNDELIVERED}" OR resource.type = "x"', "filter clause"),
        (
            f'metric.type = "{UNDELIVERED}" AND metric.labels.x = "y"',
            "filter key 'metric.labels.x'",
        ),
    ],
    ids=["unknown-metric", "no-metric", "not-and", "unknown-key"],
)
def test_the_emulator_refuses_a_bad_filter_with_googles_error_json(
    gcp_emulator: GcpEmulator, filter_text: str, named: str
) -> None:
    """A filter it cannot serve: 400 INVALID_ARGUMENT, the message naming what is wrong."""
    answer = _list(gcp_emulator, filter_text)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert named in error["message"]


def test_the_emulator_requires_the_interval_end_time(gcp_emulator: GcpEmulator) -> None:
    """Without interval.endTime (required by the API) the answer is a 400 naming it."""
    url = f"{gcp_emulator.monitoring_endpoint}/v3/projects/{PROJECT}/timeSeries"
    answer = requests.get(url, params={"filter": metric_filter(UNDELIVERED, "x")}, timeout=10)
    assert answer.status_code == 400
    assert "interval.endTime" in answer.json()["error"]["message"]


def test_a_refused_monitoring_request_is_an_adapter_error(gcp_emulator: GcpEmulator) -> None:
    """The reader turns Monitoring's error JSON into an AdapterError naming metric and message."""
    endpoint = str(gcp_emulator.monitoring_endpoint)
    reader = CloudMonitoring(PROJECT, endpoint, make_session(endpoint))
    with pytest.raises(AdapterError, match=r"bogus/metric \(400\).*emulator serves"):
        reader.newest("bogus/metric", "x")
    reader.close()


def test_monitoring_endpoint_is_validated() -> None:
    """A monitoring endpoint without a scheme, or a misspelt key, is refused naming the field."""
    with pytest.raises(ConfigError) as bad:
        parse_config({"monitoring_endpoint": "monitoring.googleapis.com"})
    assert bad.value.problems[0].field == "gcp.monitoring_endpoint"
    with pytest.raises(ConfigError) as misspelt:
        parse_config({"monitoring_endpiont": "https://monitoring.googleapis.com"})
    assert "did you mean 'monitoring_endpoint'" in misspelt.value.problems[0].rule
