"""The azure lag gauge's reading of Azure Monitor: what Event Grid says about a subscription.

Event Grid namespaces have no data-plane call and no ARM property for a queue
subscription's depth, and Azure Monitor has no depth gauge for them either.
It does count, per namespace topic and event subscription (dimensions
``Topic`` and ``EventSubscriptionName`` of resource type
``Microsoft.EventGrid/namespaces``; Microsoft's "Supported metrics -
Microsoft.EventGrid/namespaces" and "Monitor data reference (pull
delivery)"):

- ``MatchedEvents``: events published that met the subscription's filter;
- ``SuccessfulAcknowledgedEvents``: events a client acknowledged;
- ``DeadLetteredEvents``: events sent to the dead-letter destination
  (rejected, or out of delivery attempts);
- ``DroppedEvents``: events deleted without a dead-letter destination
  (rejected, out of attempts, or past the retention).

(The supported-metrics table gives the Topic and EventSubscriptionName
dimensions for the subscription metrics; the pull-delivery reference lists
MatchedEvents, DeadLetteredEvents and DroppedEvents without naming theirs.
This reading has been checked against the emulator only, not a live
namespace.) Every matched event ends in exactly one of the last three, or is
still in the subscription, so over a window that covers the events' lifetime

    undelivered = Matched - Acknowledged - DeadLettered - Dropped

counts what waits in the subscription, locked (leased) events included,
since Azure does not split them. Read here with Azure Monitor's metrics REST
API (``GET {arm_endpoint}{namespace id}/providers/Microsoft.Insights/metrics``,
aggregation Total) through azure-core with the ARM bearer credential. Limits,
all Azure's: the counts are exact for a subscription younger than LOOKBACK;
for an older one, events matched before the window but settled inside it
make the figure too low by that many (few when events are settled quickly),
never below 0. Platform metrics reach Azure Monitor a few minutes late.
Azure exposes no lease count and no message age: `in_flight` and
`oldest_age` are None. `dead_letters` is the number of events dead-lettered
within LOOKBACK (they sit in Blob storage, which polybus does not read, so
there is no depth to read).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import HeadersPolicy, RetryPolicy, UserAgentPolicy
from azure.core.rest import HttpRequest, HttpResponse

from polybus.adapters.azure.arm import ARM_SCOPE
from polybus.adapters.azure.errors import translate_errors
from polybus.adapters.azure.identity import LoopbackBearerPolicy
from polybus.core.contract import BacklogStats

METRICS_API_VERSION = "2023-10-01"
METRICS_NAMESPACE = "Microsoft.EventGrid/namespaces"
MATCHED = "MatchedEvents"
ACKNOWLEDGED = "SuccessfulAcknowledgedEvents"
DEAD_LETTERED = "DeadLetteredEvents"
DROPPED = "DroppedEvents"
METRICS = (MATCHED, ACKNOWLEDGED, DEAD_LETTERED, DROPPED)
LOOKBACK = timedelta(days=8)  # past a namespace topic's longest event retention (7 days)
INTERVAL = "PT1H"  # 192 points per metric over LOOKBACK; only their sum is used


def namespace_id(subscription_id: str, resource_group: str, namespace: str) -> str:
    """The ARM resource id of an Event Grid namespace."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.EventGrid/namespaces/{namespace}"
    )


def dimension_filter(topic: str, subscription: str) -> str:
    """The metrics ``$filter`` selecting one namespace topic's event subscription."""
    return f"Topic eq '{_quoted(topic)}' and EventSubscriptionName eq '{_quoted(subscription)}'"


class AzureMonitor:
    """Reads Event Grid namespace metrics from Azure Monitor for the lag gauge."""

    def __init__(
        self,
        credential: Any,
        subscription_id: str,
        resource_group: str,
        namespace: str,
        endpoint: str = "https://management.azure.com",
    ) -> None:
        self.resource = namespace_id(subscription_id, resource_group, namespace)
        self.endpoint = endpoint.rstrip("/")
        self._client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            self.endpoint,
            policies=[
                HeadersPolicy(),
                UserAgentPolicy(sdk_moniker="polybus-monitor"),
                RetryPolicy(retry_total=2),
                LoopbackBearerPolicy(credential, ARM_SCOPE),  # plain http only to loopback
            ],
        )

    def totals(self, topic: str, subscription: str) -> dict[str, float]:
        """Each metric of METRICS summed over LOOKBACK for one subscription (0 without data)."""
        end = datetime.now(UTC)
        params = {
            "api-version": METRICS_API_VERSION,
            "metricnamespace": METRICS_NAMESPACE,
            "metricnames": ",".join(METRICS),
            "aggregation": "Total",
            "interval": INTERVAL,
            "timespan": f"{_iso(end - LOOKBACK)}/{_iso(end)}",
            "$filter": dimension_filter(topic, subscription),
        }
        url = f"{self.endpoint}{quote(self.resource)}/providers/Microsoft.Insights/metrics"
        with translate_errors(f"read Azure Monitor metrics of {topic}/{subscription}"):
            response = self._client.send_request(HttpRequest("GET", url, params=params))
            if response.status_code != 200:
                raise HttpResponseError(message=_error_message(response), response=response)
            return metric_totals(response.json())

    def backlog(self, name: str, pairs: list[tuple[str, str]]) -> BacklogStats:
        """The lag gauge of a subscription read from its (topic, subscription) pairs."""
        undelivered = 0.0
        dead = 0.0
        for topic, subscription in pairs:
            counts = self.totals(topic, subscription)
            dead += counts[DEAD_LETTERED]
            undelivered += max(
                0.0,
                counts[MATCHED] - counts[ACKNOWLEDGED] - counts[DEAD_LETTERED] - counts[DROPPED],
            )
        return BacklogStats(
            name,
            undelivered=int(undelivered),
            in_flight=None,
            oldest_age=None,
            dead_letters=int(dead),
        )

    def close(self) -> None:
        """Close the HTTP pipeline."""
        self._client.close()


def metric_totals(answer: Any) -> dict[str, float]:
    """``value[].timeseries[].data[].total`` summed per metric name (METRICS all present)."""
    totals = dict.fromkeys(METRICS, 0.0)
    for metric in answer.get("value", []) if isinstance(answer, Mapping) else []:
        name = str(metric.get("name", {}).get("value", ""))
        for series in metric.get("timeseries", []):
            for point in series.get("data", []):
                totals[name] = totals.get(name, 0.0) + float(point.get("total") or 0.0)
    return totals


def _quoted(value: str) -> str:
    """A value for a single-quoted OData string literal."""
    return value.replace("'", "''")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_message(response: Any) -> str:
    """Azure's error JSON (``{"error": {...}}`` from ARM, ``{"code", "message"}`` from Monitor)."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text())[:200]
    error = body.get("error", body) if isinstance(body, Mapping) else {}
    return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
