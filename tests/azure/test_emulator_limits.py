"""Azure's limits and error bodies in the Event Grid emulator; malformed input is always a 4xx."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.messaging import CloudEvent

from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.provisioning import EmulatorAdmin
from tests.azure.conftest import SdkClients

API = "api-version=2024-06-01"


def _post(
    emulator: EventGridEmulator, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST raw bytes (what a misbehaving client sends) and return the status and JSON body."""
    sent = {"aeg-sas-key": emulator.key, "Content-Type": "application/json"}
    sent.update(headers or {})
    request = urllib.request.Request(emulator.endpoint + path, data=body, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read() or b"{}")


def _event(**extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", **extra}


def _namespace(azure_admin: EmulatorAdmin, name: Any) -> tuple[str, str]:
    topic, sub = name("limits"), name("sub")
    azure_admin.put_namespace_topic(topic)
    azure_admin.put_pull_subscription(topic, sub)
    return topic, sub


def test_one_event_over_one_megabyte_is_413_through_the_sdk(
    azure_admin: EmulatorAdmin, sdk: SdkClients, name: Any
) -> None:
    """An event over 1,048,576 bytes is refused with 413 naming the per-event limit."""
    topic, _ = _namespace(azure_admin, name)
    with pytest.raises(HttpResponseError) as caught:
        sdk.publisher(topic).send(CloudEvent(source="/s", type="t", data="x" * 1_050_000))
    assert caught.value.status_code == 413
    assert "maximum size of one event is 1048576 bytes" in str(caught.value)


def test_a_batch_between_one_megabyte_and_the_request_limit_is_accepted(
    azure_admin: EmulatorAdmin, sdk: SdkClients, name: Any
) -> None:
    """Three 400 kB events (1.2 MB) fit under the 1,536,000-byte request limit, as on Azure."""
    topic, sub = _namespace(azure_admin, name)
    events = [CloudEvent(source="/s", type="t", data="x" * 400_000) for _ in range(3)]
    sdk.publisher(topic).send(events)
    assert azure_admin.pull_subscription(topic, sub)["ready"] == 3


@pytest.mark.parametrize(
    ("label", "body", "headers", "status", "phrase"),
    [
        ("non-ASCII key", json.dumps(_event()).encode(), {"aeg-sas-key": "k\xe9y"}, 401, "not valid"),
        ("non-ASCII attribute", json.dumps(_event(**{"k\xe9": "v"})).encode(), {}, 400, "invalid"),
        ("upper-case attribute", json.dumps(_event(Tenant="a")).encode(), {}, 400, "lower-case"),
        ("deep JSON", ("[" * 100_000 + "]" * 100_000).encode(), {}, 400, "maximum depth (64)"),
        (
            "deep data",
            json.dumps(_event(data=json.loads("[" * 70 + "]" * 70))).encode(),
            {},
            400,
            "maximum depth (64)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 25 else "",
)
def test_malformed_publishes_get_a_4xx_with_an_azure_error_body(
    azure_emulator: EventGridEmulator,
    azure_admin: EmulatorAdmin,
    name: Any,
    label: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    phrase: str,
) -> None:
    """Each malformed publish is answered with its 4xx and {"error": {"code", "message"}}."""
    topic, _ = _namespace(azure_admin, name)
    got, answer = _post(azure_emulator, f"/topics/{topic}:publish?{API}", body, headers)
    assert got == status, label
    assert phrase in answer["error"]["message"] and answer["error"]["code"]


@pytest.mark.parametrize("delay", ["inf", "nan", "1e400", "-1", "5"])
def test_release_delay_outside_the_allowed_values_is_400(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, name: Any, delay: str
) -> None:
    """releaseDelayInSeconds of inf, nan, overflow or an unlisted value is a 400, never a 500."""
    topic, sub = _namespace(azure_admin, name)
    path = f"/topics/{topic}/eventsubscriptions/{sub}:release?{API}&releaseDelayInSeconds={delay}"
    got, answer = _post(azure_emulator, path, json.dumps({"lockTokens": ["x"]}).encode())
    assert got == 400
    assert "releaseDelayInSeconds must be one of (0, 10, 60, 600, 3600)" in answer["error"]["message"]
