"""A client for the emulator's admin API (topics and event subscriptions).

Real Azure creates these through ARM (management plane), which polybus does
not drive; against the emulator the adapter provisions through this client.
Stdlib only, so it works wherever the emulator does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


class AdminError(Exception):
    """The admin API refused a request."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class EmulatorAdmin:
    """Create, inspect and delete emulator topics and subscriptions."""

    def __init__(self, endpoint: str, key: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.key = key
        self.timeout = timeout

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Send one admin request; returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.endpoint + path,
            data=data,
            method=method,
            headers={"aeg-sas-key": self.key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = _error_detail(exc.read())
            raise AdminError(exc.code, *detail) from None
        return json.loads(raw) if raw else None

    # -- namespace topics -----------------------------------------------------
    def put_namespace_topic(self, topic: str) -> None:
        """Create a namespace topic (idempotent)."""
        self.request("PUT", f"/admin/namespace/topics/{_q(topic)}")

    def delete_namespace_topic(self, topic: str) -> None:
        """Delete a namespace topic and its subscriptions."""
        self.request("DELETE", f"/admin/namespace/topics/{_q(topic)}")

    def put_pull_subscription(
        self,
        topic: str,
        name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        max_delivery_count: int = 10,
        lock_duration: float = 60.0,
        dead_letter_topic: str | None = None,
    ) -> dict[str, Any]:
        """Create or update a pull subscription; returns its description."""
        body = {
            "filter": filter,
            "maxDeliveryCount": max_delivery_count,
            "lockDurationInSeconds": lock_duration,
            "deadLetterTopic": dead_letter_topic,
        }
        return dict(self.request("PUT", _ns_sub(topic, name), body))

    def pull_subscription(self, topic: str, name: str) -> dict[str, Any]:
        """A pull subscription's settings and queue depths."""
        return dict(self.request("GET", _ns_sub(topic, name)))

    def delete_pull_subscription(self, topic: str, name: str) -> None:
        """Delete a pull subscription (idempotent)."""
        self.request("DELETE", _ns_sub(topic, name))

    def pull_dead_letters(self, topic: str, name: str) -> list[dict[str, Any]]:
        """Dead-letter records (``event`` plus ``deadLetterProperties``)."""
        return list(self.request("GET", _ns_sub(topic, name) + "/deadletters")["value"])

    # -- basic topics -----------------------------------------------------------
    def put_basic_topic(self, topic: str, input_schema: str = "CloudEventSchemaV1_0") -> str:
        """Create a basic topic; returns its publish endpoint."""
        answer = self.request(
            "PUT", f"/admin/basic/topics/{_q(topic)}", {"inputSchema": input_schema}
        )
        return str(answer["endpoint"])

    def delete_basic_topic(self, topic: str) -> None:
        """Delete a basic topic and its subscriptions."""
        self.request("DELETE", f"/admin/basic/topics/{_q(topic)}")

    def put_webhook_subscription(
        self,
        topic: str,
        name: str,
        endpoint_url: str,
        *,
        filter: Mapping[str, Any] | None = None,
        max_delivery_attempts: int = 30,
        ttl_minutes: float = 1440.0,
        dead_letter: bool = False,
        max_events_per_batch: int = 1,
    ) -> dict[str, Any]:
        """Create or update a webhook subscription (the emulator runs the handshake)."""
        body = {
            "endpointUrl": endpoint_url,
            "filter": filter,
            "maxDeliveryAttempts": max_delivery_attempts,
            "eventTimeToLiveInMinutes": ttl_minutes,
            "deadLetter": dead_letter,
            "maxEventsPerBatch": max_events_per_batch,
        }
        return dict(self.request("PUT", _basic_sub(topic, name), body))

    def webhook_subscription(self, topic: str, name: str) -> dict[str, Any]:
        """A webhook subscription's settings and provisioning state."""
        return dict(self.request("GET", _basic_sub(topic, name)))

    def delete_webhook_subscription(self, topic: str, name: str) -> None:
        """Delete a webhook subscription (idempotent)."""
        self.request("DELETE", _basic_sub(topic, name))

    def webhook_dead_letters(self, topic: str, name: str) -> list[dict[str, Any]]:
        """Dead-lettered events with the documented dead-letter fields."""
        return list(self.request("GET", _basic_sub(topic, name) + "/deadletters")["value"])

    def delete_webhook_dead_letter(self, topic: str, name: str, event_id: str) -> None:
        """Remove one dead letter (the oldest with `event_id`) once it has been processed."""
        self.request("DELETE", _basic_sub(topic, name) + f"/deadletters/{_q(event_id)}")

    def webhook_deliveries(self, topic: str, name: str) -> list[dict[str, Any]]:
        """The delivery-attempt log: attempt, status, outcome, time, next (unscaled) delay."""
        return list(self.request("GET", _basic_sub(topic, name) + "/deliveries")["value"])


def _q(name: str) -> str:
    return quote(name, safe="")


def _ns_sub(topic: str, name: str) -> str:
    return f"/admin/namespace/topics/{_q(topic)}/eventsubscriptions/{_q(name)}"


def _basic_sub(topic: str, name: str) -> str:
    return f"/admin/basic/topics/{_q(topic)}/eventsubscriptions/{_q(name)}"


def _error_detail(raw: bytes) -> tuple[str, str]:
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "Error", raw.decode("utf-8", "replace")[:200]
