"""The gcp lag gauge's reading of Cloud Monitoring: what real Pub/Sub says about a subscription.

Pub/Sub has no API call for a subscription's backlog; it publishes gauges
to Cloud Monitoring instead, read here with the Monitoring API v3
``projects.timeSeries.list`` over REST (``GET {endpoint}/v3/projects/{project}/timeSeries``)
through google-auth's AuthorizedSession:

- ``pubsub.googleapis.com/subscription/num_undelivered_messages``: the
  subscription's unacknowledged messages, leased ones included (Monitoring
  does not split them), read for the subscription and for its dead-letter
  subscription;
- ``pubsub.googleapis.com/subscription/oldest_unacked_message_age``: seconds.

Each gauge is sampled every 60 seconds and, after sampling, is not visible for
up to 120 seconds (Google's metric list), so the figures trail the
subscription by one to three minutes; the newest point within
LOOKBACK seconds is taken. A subscription younger than the delay has no
point yet: its backlog reads 0 and its oldest age None. Monitoring reports
no lease count: `in_flight` is None.

Credentials: Application Default Credentials with the monitoring.read scope
(the caller needs ``monitoring.timeSeries.list``, e.g. roles/monitoring.viewer);
an endpoint on plain http (the polybus emulator) gets anonymous credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import google.auth
import requests
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import AuthorizedSession

from polybus.core.contract import BacklogStats
from polybus.core.errors import AdapterError

MONITORING_ENDPOINT = "https://monitoring.googleapis.com"
MONITORING_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
LOOKBACK = 600  # seconds of history searched for the newest point (the delay is 1-3 minutes)
TIMEOUT = 10.0  # seconds per Monitoring request


def make_session(endpoint: str) -> AuthorizedSession:
    """An AuthorizedSession for `endpoint`: anonymous on plain http (an emulator), else ADC."""
    if urlsplit(endpoint).scheme == "http":
        return AuthorizedSession(AnonymousCredentials())
    try:
        credentials, _ = google.auth.default(scopes=[MONITORING_SCOPE])
    except GoogleAuthError as exc:
        raise AdapterError(f"gcp: no credentials for Cloud Monitoring: {exc}") from exc
    return AuthorizedSession(credentials)


def metric_filter(metric: str, subscription_id: str) -> str:
    """The timeSeries.list filter selecting one Pub/Sub metric of one subscription."""
    return (
        f'metric.type = "{metric}" AND resource.type = "pubsub_subscription"'
        f' AND resource.labels.subscription_id = "{subscription_id}"'
    )


class CloudMonitoring:
    """Reads a subscription's Pub/Sub gauges from Cloud Monitoring."""

    def __init__(self, project: str, endpoint: str, session: Any) -> None:
        self.project = project
        self.endpoint = endpoint.rstrip("/")
        self._session = session

    def newest(self, metric: str, subscription_id: str) -> float | None:
        """The newest point of `metric` for the subscription within LOOKBACK seconds, or None."""
        end = datetime.now(UTC)
        params = {
            "filter": metric_filter(metric, subscription_id),
            "interval.startTime": _rfc3339(end - timedelta(seconds=LOOKBACK)),
            "interval.endTime": _rfc3339(end),
        }
        url = f"{self.endpoint}/v3/projects/{self.project}/timeSeries"
        try:
            response = self._session.get(url, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise AdapterError(f"gcp: Cloud Monitoring at {self.endpoint}: {exc}") from exc
        if response.status_code != 200:
            raise AdapterError(
                f"gcp: Cloud Monitoring refused timeSeries.list of {metric} "
                f"({response.status_code}): {_error_message(response)}"
            )
        return newest_value(response.json())

    def backlog(self, subscription_id: str, dead_letter_id: str) -> BacklogStats:
        """The portable lag gauge from three Monitoring reads (see the module docstring)."""
        undelivered = self.newest(UNDELIVERED, subscription_id)
        age = self.newest(OLDEST_AGE, subscription_id) if undelivered else None
        dead = self.newest(UNDELIVERED, dead_letter_id)
        return BacklogStats(
            subscription_id,
            undelivered=int(undelivered or 0),
            in_flight=None,
            oldest_age=age,
            dead_letters=int(dead or 0),
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def newest_value(answer: Any) -> float | None:
    """The value of the newest point across a ListTimeSeriesResponse (points come newest first)."""
    newest: tuple[str, float] | None = None
    for series in answer.get("timeSeries", []) if isinstance(answer, dict) else []:
        for point in series.get("points", []):
            value = point.get("value", {})
            raw = value.get("int64Value", value.get("doubleValue"))
            stamp = str(point.get("interval", {}).get("endTime", ""))
            if raw is not None and (newest is None or stamp > newest[0]):
                newest = (stamp, float(raw))
    return None if newest is None else newest[1]


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error_message(response: Any) -> str:
    """Google's error JSON ``{"error": {"message": ...}}``, else the start of the body."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text)[:200]
