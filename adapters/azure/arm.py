"""Provisioning on real Azure through Azure Resource Manager (azure-mgmt-eventgrid).

With ``arm_subscription``, ``arm_resource_group`` and ``arm_namespace`` set,
the adapter creates what a subscription needs in the Event Grid namespace as
it does on the emulator: the namespace topic, and a queue event subscription
with the lock duration, delivery count and native filter
(``filtersConfiguration``), so filtering runs in Event Grid and not in the
client. Credentials come from ``DefaultAzureCredential`` (environment,
workload or managed identity, Azure CLI, ...): no key and no portal step.

Event Grid namespaces dead-letter to Blob storage, which polybus does not
read; set ``arm_dead_letter_container`` (a storage container resource id) to
have Azure keep them there. The emulator serves the same ARM requests
(emulator/arm.py), which is how this module is tested.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from polybus.adapters.azure.errors import translate_errors
from polybus.adapters.azure.identity import is_loopback_http
from polybus.core.extras import Requirement

ARM_SCOPE = "https://management.azure.com/.default"
MIN_LOCK_SECONDS, MAX_LOCK_SECONDS = 60, 300
MAX_DELIVERY_COUNT = 10
ARM = Requirement("ARM provisioning (arm_* settings)", ("azure.mgmt.eventgrid",), "azure")


def namespace_filters(native: Mapping[str, Any] | None) -> dict[str, Any]:
    """A basic-topic style native filter as a namespace subscription's ``filtersConfiguration``."""
    if not native:
        return {}
    out: dict[str, Any] = {}
    if native.get("includedEventTypes"):
        out["includedEventTypes"] = list(native["includedEventTypes"])
    filters = [dict(f) for f in native.get("advancedFilters", [])]
    if native.get("subjectBeginsWith"):
        filters.append(
            {"operatorType": "StringBeginsWith", "key": "subject", "values": [native["subjectBeginsWith"]]}
        )
    if native.get("subjectEndsWith"):
        filters.append(
            {"operatorType": "StringEndsWith", "key": "subject", "values": [native["subjectEndsWith"]]}
        )
    if filters:
        out["filters"] = filters
    return out


def subscription_body(
    native_filter: Mapping[str, Any] | None,
    lock_seconds: float,
    max_delivery_count: int,
    dead_letter_container: str = "",
) -> dict[str, Any]:
    """The ARM body of a queue event subscription (what the provisioner sends and plans show)."""
    queue: dict[str, Any] = {
        "receiveLockDurationInSeconds": int(min(MAX_LOCK_SECONDS, max(MIN_LOCK_SECONDS, lock_seconds))),
        "maxDeliveryCount": max(1, min(MAX_DELIVERY_COUNT, max_delivery_count)),
    }
    if dead_letter_container:
        account, _, container = dead_letter_container.rpartition("/blobServices/default/containers/")
        queue["deadLetterDestinationWithResourceIdentity"] = {
            "deadLetterDestination": {
                "endpointType": "StorageBlob",
                "properties": {"resourceId": account, "blobContainerName": container},
            }
        }
    return {
        "properties": {
            "deliveryConfiguration": {"deliveryMode": "Queue", "queue": queue},
            "eventDeliverySchema": "CloudEventSchemaV1_0",
            "filtersConfiguration": namespace_filters(native_filter),
        }
    }


class ArmProvisioner:
    """Creates and deletes namespace topics and queue subscriptions through ARM."""

    def __init__(
        self,
        credential: Any,
        subscription_id: str,
        resource_group: str,
        namespace: str,
        endpoint: str = "https://management.azure.com",
        dead_letter_container: str = "",
    ) -> None:
        ARM.check()
        from azure.mgmt.eventgrid import EventGridManagementClient

        self.resource_group = resource_group
        self.namespace = namespace
        self.dead_letter_container = dead_letter_container
        self.client = EventGridManagementClient(
            credential, subscription_id, base_url=endpoint, credential_scopes=[ARM_SCOPE]
        )
        # azure-core sends bearer tokens only over https; the emulator is plain http on loopback
        self._options: dict[str, Any] = (
            {"enforce_https": False} if is_loopback_http(endpoint) else {}
        )
        self.known: set[str] = set()

    def ensure_topic(self, topic: str) -> None:
        """Create the namespace topic unless this provisioner already did."""
        if topic in self.known:
            return
        body = {"properties": {"inputSchema": "CloudEventSchemaV1_0", "publisherType": "Custom"}}
        with translate_errors(f"create topic {topic} (ARM)"):
            self.client.namespace_topics.begin_create_or_update(
                self.resource_group, self.namespace, topic, _json(body), **self._options
            ).result()
        self.known.add(topic)

    def put_subscription(
        self,
        topic: str,
        name: str,
        *,
        native_filter: Mapping[str, Any] | None,
        lock_seconds: float,
        max_delivery_count: int,
    ) -> dict[str, Any]:
        """Create or update a queue event subscription; returns what ARM answered."""
        self.ensure_topic(topic)
        body = subscription_body(
            native_filter, lock_seconds, max_delivery_count, self.dead_letter_container
        )
        with translate_errors(f"provision {name} (ARM)"):
            result = self.client.namespace_topic_event_subscriptions.begin_create_or_update(
                self.resource_group, self.namespace, topic, name, _json(body), **self._options
            ).result()
        return dict(result.as_dict())

    def get_subscription(self, topic: str, name: str) -> dict[str, Any]:
        """The subscription as ARM describes it."""
        with translate_errors(f"read {name} (ARM)"):
            found = self.client.namespace_topic_event_subscriptions.get(
                self.resource_group, self.namespace, topic, name, **self._options
            )
        return dict(found.as_dict())

    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a queue event subscription."""
        with translate_errors(f"delete {name} (ARM)"):
            self.client.namespace_topic_event_subscriptions.begin_delete(
                self.resource_group, self.namespace, topic, name, **self._options
            ).result()

    def delete_topic(self, topic: str) -> None:
        """Delete a namespace topic and its subscriptions."""
        with translate_errors(f"delete topic {topic} (ARM)"):
            self.client.namespace_topics.begin_delete(
                self.resource_group, self.namespace, topic, **self._options
            ).result()
        self.known.discard(topic)

    def close(self) -> None:
        """Close the management client's session."""
        self.client.close()


def _json(body: Mapping[str, Any]) -> io.BytesIO:
    """The request body as ARM JSON (the SDK sends IO bodies as they are)."""
    return io.BytesIO(json.dumps(body).encode("utf-8"))
