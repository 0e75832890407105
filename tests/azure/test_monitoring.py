"""The azure lag gauge from Azure Monitor's namespace metrics, served by the emulator (ARM)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken

from polybus.adapters.azure.adapter import AzureAdapter
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.monitoring import (
    METRICS_API_VERSION,
    AzureMonitor,
    dimension_filter,
    namespace_id,
)
from polybus.adapters.azure.plugin import make_adapter
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, UnsupportedError
from polybus.core.events import new_event
from tests.contract.helpers import receive_n

ARM = {
    "arm_subscription": "00000000-0000-0000-0000-000000000000",
    "arm_resource_group": "polybus-rg",
    "arm_namespace": "polybus-ns",
}
RESOURCE = namespace_id(ARM["arm_subscription"], ARM["arm_resource_group"], ARM["arm_namespace"])


@pytest.fixture
def adapter(azure_cli: None, azure_emulator: EventGridEmulator) -> Iterator[AzureAdapter]:
    """An adapter in real-Azure mode (ARM, no admin API) against the emulator."""
    made = make_adapter(
        {
            "endpoint": azure_emulator.endpoint,
            "credential": "default",
            "arm_endpoint": azure_emulator.endpoint,
            **ARM,
        }
    )
    assert isinstance(made, AzureAdapter) and made.admin is None
    yield made
    made.close()


class _StaticToken:
    """A TokenCredential handing out one fixed bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The fixed token, valid for an hour."""
        return AccessToken(self.token, int(time.time()) + 3600)


def _metrics(
    emulator: EventGridEmulator, token: str | None = None, **params: str
) -> requests.Response:
    url = f"{emulator.endpoint}{RESOURCE}/providers/Microsoft.Insights/metrics"
    headers = {"Authorization": f"Bearer {token or emulator.key}"}
    query = {"api-version": METRICS_API_VERSION, **params}
    return requests.get(url, params=query, headers=headers, timeout=10)


def test_backlog_is_matched_minus_settled_from_azure_monitor(
    adapter: AzureAdapter, name: Any
) -> None:
    """Publish 3, consume none: backlog 3; in-flight and oldest age are None (Azure has neither)."""
    topic, sub = name("orders"), name("lag")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=60.0)))
    assert adapter.backlog_stats(sub).undelivered == 0
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": n}) for n in range(3)])
    stats = adapter.backlog_stats(sub)
    assert (stats.undelivered, stats.in_flight, stats.oldest_age, stats.dead_letters) == (
        3,
        None,
        None,
        0,
    )


def test_an_ack_and_a_dead_lettered_poison_event_are_counted(
    adapter: AzureAdapter, azure_emulator: EventGridEmulator, name: Any
) -> None:
    """One acked, one dead-lettered poison, one left: backlog 1, 1 dead letter, 1 of 3 acked."""
    topic, sub = name("orders"), name("poison")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=60.0)))
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": n}) for n in range(3)])
    good, poison = receive_n(adapter, sub, 2)
    good.ack()
    poison.dead_letter("invalid input")
    adapter.flush_acks()
    stats = adapter.backlog_stats(sub)
    assert (stats.undelivered, stats.dead_letters) == (1, 1)
    answer = _metrics(
        azure_emulator,
        metricnames="MatchedEvents,SuccessfulAcknowledgedEvents",
        **{"$filter": dimension_filter(topic, sub)},
    )
    totals = {
        metric["name"]["value"]: sum(p["total"] for p in metric["timeseries"][0]["data"])
        for metric in answer.json()["value"]
    }
    assert totals == {"MatchedEvents": 3.0, "SuccessfulAcknowledgedEvents": 1.0}


def test_the_emulator_answers_azure_monitors_metrics_shape(
    adapter: AzureAdapter, azure_emulator: EventGridEmulator, name: Any
) -> None:
    """value[].timeseries[].data[] carries the Total, per Topic and EventSubscriptionName."""
    topic, sub = name("orders"), name("shape")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("com.example.order", "/shop", {"n": 1})])
    answer = _metrics(
        azure_emulator,
        metricnames="MatchedEvents,DroppedEvents",
        aggregation="Total",
        interval="PT1H",
        timespan="2026-01-01T00:00:00Z/2026-01-01T03:00:00Z",
        **{"$filter": dimension_filter(topic, sub)},
    )
    assert answer.status_code == 200
    matched, dropped = answer.json()["value"]
    assert matched["name"]["value"] == "MatchedEvents" and matched["unit"] == "Count"
    [series] = matched["timeseries"]
    assert {m["value"] for m in series["metadatavalues"]} == {topic, sub}
    assert [point["timeStamp"] for point in series["data"]] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        "2026-01-01T02:00:00Z",
    ]
    assert sum(point["total"] for point in series["data"]) == 1.0
    assert sum(p["total"] for p in dropped["timeseries"][0]["data"]) == 0.0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"metricnames": "QueueDepth"}, "metric: QueueDepth, Valid metrics: MatchedEvents"),
        ({"metricnames": "MatchedEvents", "aggregation": "Average"}, "aggregation 'Average'"),
        ({"metricnames": "MatchedEvents", "$filter": "Region eq 'x'"}, "dimension 'Region'"),
        ({"metricnames": "MatchedEvents", "$filter": "Topic ne 'x'"}, "$filter clause"),
        ({"metricnames": "MatchedEvents", "interval": "PT2M"}, "interval 'PT2M'"),
        ({}, "metricnames is required"),
    ],
    ids=["unknown-metric", "aggregation", "dimension", "operator", "interval", "no-metric"],
)
def test_the_emulator_refuses_what_azure_monitor_refuses(
    azure_emulator: EventGridEmulator, params: dict[str, str], named: str
) -> None:
    """Unknown metric, aggregation, dimension or interval: 400 with Monitor's code and message."""
    answer = _metrics(azure_emulator, **params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "BadRequest" and named in body["message"]


def test_the_metrics_route_wants_the_bearer_token(azure_emulator: EventGridEmulator) -> None:
    """A request without the emulator's token is refused with 401, as ARM refuses it."""
    assert (
        _metrics(azure_emulator, token="not-the-key", metricnames="MatchedEvents").status_code
        == 401
    )


def test_a_refused_metrics_request_is_an_adapter_error(azure_emulator: EventGridEmulator) -> None:
    """Azure Monitor's refusal (here a wrong token) reaches the caller as an AdapterError."""
    monitor = AzureMonitor(
        _StaticToken("not-the-key"),
        ARM["arm_subscription"],
        ARM["arm_resource_group"],
        ARM["arm_namespace"],
        azure_emulator.endpoint,
    )
    with pytest.raises(AdapterError, match=r"Azure Monitor metrics of t/s: HTTP 401"):
        monitor.backlog("s", [("t", "s")])
    monitor.close()


def test_without_admin_or_arm_the_gauge_names_the_settings(
    azure_emulator: EventGridEmulator,
) -> None:
    """Neither the admin API nor ARM settings: UnsupportedError naming the keys to set."""
    adapter = make_adapter(
        {
            "endpoint": azure_emulator.endpoint,
            "key": azure_emulator.key,
            "subscriptions": {"s": "t"},
        }
    )
    try:
        with pytest.raises(UnsupportedError, match="arm_subscription, arm_resource_group"):
            adapter.backlog_stats("s")
    finally:
        adapter.close()
