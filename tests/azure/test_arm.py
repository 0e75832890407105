"""Real-Azure mode against the emulator: ARM provisioning through azure-mgmt-eventgrid, Entra ID via DefaultAzureCredential."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from polybus.adapters.azure.config import parse_config
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.identity import LOOPBACK, is_loopback_http
from polybus.adapters.azure.plugin import make_adapter
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, ConfigError
from polybus.core.events import new_event
from polybus.core.filters.dialects import Exact
from tests.contract.helpers import receive_n


def _settings(emulator: EventGridEmulator, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": emulator.endpoint,
        "credential": "default",
        "arm_subscription": "00000000-0000-0000-0000-000000000000",
        "arm_resource_group": "polybus-rg",
        "arm_namespace": "polybus-ns",
        "arm_endpoint": emulator.endpoint,
        **extra,
    }


@pytest.mark.usefixtures("azure_cli")
def test_arm_provisions_a_native_filter_and_entra_id_carries_the_data_plane(
    azure_emulator: EventGridEmulator, name: Any
) -> None:
    """No key anywhere: ARM creates topic and filtered subscription; events flow with bearer tokens."""
    adapter = make_adapter(_settings(azure_emulator))
    topic, sub = name("orders"), name("placed")
    try:
        residual = adapter.provision(
            SubscriptionSpec(
                sub,
                topic,
                Exact("type", "order.placed"),
                DeliveryPolicy(ack_deadline=30.0),
            )
        )
        # Event Grid compares strings ignoring case: the client re-checks the exact match
        assert residual == Exact("type", "order.placed")
        described = adapter.arm.get_subscription(topic, sub)
        assert described["filters_configuration"]["included_event_types"] == ["order.placed"]
        assert described["delivery_configuration"]["queue"]["receive_lock_duration_in_seconds"] == 60
        adapter.publish(
            topic,
            [new_event("order.placed", "/shop", {"n": 1}), new_event("order.cancelled", "/shop", {"n": 2})],
        )
        queued = azure_emulator.namespace.subscription(topic, sub).describe()
        assert queued["ready"] == 1  # order.cancelled was dropped by Event Grid, not the client
        [delivery] = receive_n(adapter, sub, 1)
        assert delivery.event.get_type() == "order.placed"
        delivery.ack()
    finally:
        adapter.close()


@pytest.mark.usefixtures("azure_cli")
def test_arm_refusals_arrive_as_adapter_errors(azure_emulator: EventGridEmulator, name: Any) -> None:
    """ARM's 400 for a bad subscription body is an AdapterError naming the field."""
    adapter = make_adapter(_settings(azure_emulator))
    try:
        assert adapter.arm is not None
        adapter.arm.ensure_topic(name("t"))
        body_error = adapter.arm.client.namespace_topic_event_subscriptions
        with pytest.raises(Exception, match="deliveryMode"):
            body_error.begin_create_or_update(
                "polybus-rg",
                "polybus-ns",
                name("t"),
                name("s"),
                __import__("io").BytesIO(
                    json.dumps({"properties": {"deliveryConfiguration": {"deliveryMode": "Push"}}}).encode()
                ),
                enforce_https=False,
            ).result()
        with pytest.raises(AdapterError, match=r"does not exist|not found|404"):
            adapter.arm.get_subscription(name("t"), "absent")
    finally:
        adapter.close()


def test_a_wrong_token_is_refused_by_the_emulator(
    azure_emulator: EventGridEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: Any
) -> None:
    """A token that is not the emulator's key gets 401 on ARM, surfaced as an AdapterError."""
    script = tmp_path / "az"
    token = {"accessToken": "not-the-key", "expires_on": int(time.time()) + 3600}
    script.write_text(f"#!/bin/sh\nprintf '%s' '{json.dumps(token)}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")
    adapter = make_adapter(_settings(azure_emulator))
    try:
        with pytest.raises(AdapterError, match=r"401|[Aa]uthentication|token"):
            adapter.provision(SubscriptionSpec(name("s"), name("t")))
    finally:
        adapter.close()


def test_endpoint_and_key_come_from_the_environment() -> None:
    """POLYBUS_AZURE_ENDPOINT and POLYBUS_AZURE_KEY fill what the file leaves out; the file wins."""
    env = {"POLYBUS_AZURE_ENDPOINT": "https://ns.westeurope-1.eventgrid.azure.net", "POLYBUS_AZURE_KEY": "k"}
    config = parse_config({}, environ=env)
    assert (config.endpoint, config.key) == ("https://ns.westeurope-1.eventgrid.azure.net", "k")
    assert parse_config({"endpoint": "http://127.0.0.1:1"}, environ=env).endpoint == "http://127.0.0.1:1"
    with pytest.raises(ConfigError, match="POLYBUS_AZURE_KEY"):
        parse_config({"endpoint": "https://x"}, environ={})


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"credential": "password"}, "azure.credential"),
        ({"credential": "default", "arm_subscription": "s"}, "azure.arm_resource_group"),
        (
            {"key": "k", "admin": True, "arm_subscription": "s", "arm_resource_group": "g", "arm_namespace": "n"},
            "azure.admin",
        ),
        ({"credential": "default", "namespace": False, "delivery": "push"}, "azure.credential"),
    ],
    ids=["unknown-credential", "partial-arm", "admin-and-arm", "entra-basic-topics"],
)
def test_contradictory_settings_name_the_field(settings: dict[str, Any], field: str) -> None:
    """Each contradictory combination is a ConfigError naming the field to change."""
    with pytest.raises(ConfigError) as failure:
        parse_config({"endpoint": "https://x", **settings}, environ={})
    assert field in str(failure.value)


def test_bearer_tokens_go_over_http_only_to_loopback() -> None:
    """The loopback exception covers 127.0.0.1, localhost and ::1 over http, nothing else."""
    assert all(is_loopback_http(f"http://{host}:8080/x") for host in ("127.0.0.1", "localhost"))
    assert "::1" in LOOPBACK
    assert not is_loopback_http("http://10.0.0.5:8080/x")
    assert not is_loopback_http("https://127.0.0.1:8080/x")
