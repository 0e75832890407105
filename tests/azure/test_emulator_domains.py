"""Custom input schemas, event domains and partner channels, published with the real azure-eventgrid client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.errors import AdminError
from polybus.adapters.azure.provisioning import EmulatorAdmin
from tests.azure.webhook import Received, Webhook, serve_webhook

MAPPING = {
    "inputSchemaMappingType": "Json",
    "properties": {
        "id": {"sourceField": "orderId"},
        "eventTime": {"sourceField": "at"},
        "eventType": {"sourceField": "kind", "defaultValue": "order.unknown"},
        "subject": {"defaultValue": "/orders"},
        "dataVersion": {"defaultValue": "1.0"},
    },
}


@pytest.fixture
def hooks() -> Iterator[Callable[[], tuple[Webhook, str]]]:
    """Makes recording webhook endpoints, all stopped at teardown."""
    servers: list[Any] = []

    def make() -> tuple[Webhook, str]:
        hook = Webhook()
        server, url = serve_webhook(hook)
        servers.append(server)
        return hook, url

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def _delivered(hook: Webhook, count: int, limit: float = 10.0) -> list[Received]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = hook.notifications()
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"expected {count} deliveries, got {len(hook.notifications())}")


def _client(emulator: EventGridEmulator, name: str) -> EventGridPublisherClient:
    return EventGridPublisherClient(emulator.topic_endpoint(name), AzureKeyCredential(emulator.key))


def test_custom_input_schema_maps_fields_and_each_subscription_picks_its_schema(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, hooks: Any, name: Any
) -> None:
    """Custom events are mapped for filters; subscribers get them as published, mapped or as CloudEvents."""
    topic = name("custom")
    azure_admin.request(
        "PUT",
        f"/admin/basic/topics/{topic}",
        {"inputSchema": "CustomEventSchema", "inputSchemaMapping": MAPPING},
    )
    raw_hook, raw_url = hooks()
    eg_hook, eg_url = hooks()
    ce_hook, ce_url = hooks()
    base = f"/admin/basic/topics/{topic}/eventsubscriptions"
    azure_admin.request("PUT", f"{base}/raw", {"endpointUrl": raw_url})
    azure_admin.request(
        "PUT",
        f"{base}/mapped",
        {
            "endpointUrl": eg_url,
            "eventDeliverySchema": "EventGridSchema",
            "filter": {"includedEventTypes": ["order.placed"]},
        },
    )
    azure_admin.request(
        "PUT", f"{base}/ce", {"endpointUrl": ce_url, "eventDeliverySchema": "CloudEventSchemaV1_0"}
    )
    placed = {"orderId": "o-1", "at": "2026-12-06T04:00:00Z", "kind": "order.placed", "n": 3}
    other = {"orderId": "o-2", "at": "2026-12-06T04:00:01Z", "n": 4}  # eventType from the default
    with _client(azure_emulator, topic) as client:
        client.send([placed, other])
    raw = _delivered(raw_hook, 2)
    assert sorted(r.body[0]["orderId"] for r in raw) == ["o-1", "o-2"]
    [mapped] = _delivered(eg_hook, 1)
    event = mapped.body[0]
    assert (event["id"], event["eventType"], event["subject"], event["dataVersion"]) == (
        "o-1",
        "order.placed",
        "/orders",
        "1.0",
    )
    assert event["eventTime"] == "2026-12-06T04:00:00Z" and event["data"] == placed
    converted = _delivered(ce_hook, 2)
    types = sorted(r.body["type"] for r in converted)
    assert types == ["order.placed", "order.unknown"]
    assert all(r.body["specversion"] == "1.0" and r.body["subject"] == "/orders" for r in converted)


def test_custom_mapping_errors_name_the_field(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, name: Any
) -> None:
    """An unknown mapping key gets a did-you-mean; an event missing a mapped field is a 400."""
    with pytest.raises(AdminError, match="did you mean 'eventType'"):
        azure_admin.request(
            "PUT",
            f"/admin/basic/topics/{name('bad')}",
            {
                "inputSchema": "CustomEventSchema",
                "inputSchemaMapping": {
                    "inputSchemaMappingType": "Json",
                    "properties": {"eventtype": {"sourceField": "k"}},
                },
            },
        )
    topic = name("strict")
    azure_admin.request(
        "PUT",
        f"/admin/basic/topics/{topic}",
        {"inputSchema": "CustomEventSchema", "inputSchemaMapping": MAPPING},
    )
    with _client(azure_emulator, topic) as client, pytest.raises(HttpResponseError) as failure:
        client.send([{"at": "2026-12-06T04:00:00Z"}], retry_total=0)
    assert failure.value.status_code == 400 and "orderId" in str(failure.value)


def test_domain_routes_each_event_to_its_domain_topic_and_the_domain_scope(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, hooks: Any, name: Any
) -> None:
    """EventGridEvent.topic picks the domain topic; a domain-scope subscription sees every topic."""
    domain = name("shop")
    azure_admin.request("PUT", f"/admin/domains/{domain}", {"inputSchema": "EventGridSchema"})
    orders_hook, orders_url = hooks()
    all_hook, all_url = hooks()
    azure_admin.request(
        "PUT", f"/admin/domains/{domain}/topics/orders/eventsubscriptions/h", {"endpointUrl": orders_url}
    )
    azure_admin.request("PUT", f"/admin/domains/{domain}/eventsubscriptions/all", {"endpointUrl": all_url})
    described = azure_admin.request("GET", f"/admin/domains/{domain}")
    assert described["domainTopics"] == ["orders"]
    events = [
        EventGridEvent("placed", "order.placed", {"n": 1}, "1.0", topic="orders"),
        EventGridEvent("moved", "stock.moved", {"n": 2}, "1.0", topic="stock"),
    ]
    with _client(azure_emulator, domain) as client:
        client.send(events)
    [order] = _delivered(orders_hook, 1)
    assert order.body[0]["eventType"] == "order.placed" and order.body[0]["topic"] == "orders"
    seen = _delivered(all_hook, 2)
    assert sorted(r.body[0]["eventType"] for r in seen) == ["order.placed", "stock.moved"]
    with _client(azure_emulator, domain) as client, pytest.raises(HttpResponseError) as failure:
        client.send([{"id": "1", "subject": "s", "eventType": "t", "eventTime": "2026-12-06T04:00:00Z",
                      "dataVersion": "1", "data": {}}], retry_total=0)
    assert failure.value.status_code == 400 and "domain topic" in str(failure.value)


def test_cloudevents_domain_uses_source_as_the_domain_topic(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, hooks: Any, name: Any
) -> None:
    """In the CloudEvents schema a domain event's source names its domain topic."""
    domain = name("ce-domain")
    azure_admin.request("PUT", f"/admin/domains/{domain}", {})
    hook, url = hooks()
    azure_admin.request(
        "PUT", f"/admin/domains/{domain}/topics/billing/eventsubscriptions/h", {"endpointUrl": url}
    )
    with _client(azure_emulator, domain) as client:
        client.send([CloudEvent(source="billing", type="invoice.sent", data={"n": 1}),
                     CloudEvent(source="shipping", type="parcel.sent", data={"n": 2})])
    [delivery] = _delivered(hook, 1)
    assert delivery.body["type"] == "invoice.sent"


def test_partner_channel_routes_to_its_partner_topic(
    azure_emulator: EventGridEmulator, azure_admin: EmulatorAdmin, hooks: Any, name: Any
) -> None:
    """send(channel_name=...) to a partner namespace lands on the channel's partner topic."""
    namespace, channel, partner_topic = name("partner"), name("chan"), name("ptopic")
    azure_admin.request("PUT", f"/admin/partnernamespaces/{namespace}")
    azure_admin.request(
        "PUT",
        f"/admin/partnernamespaces/{namespace}/channels/{channel}",
        {"partnerTopic": partner_topic},
    )
    hook, url = hooks()
    azure_admin.request(
        "PUT", f"/admin/basic/topics/{partner_topic}/eventsubscriptions/h", {"endpointUrl": url}
    )
    with _client(azure_emulator, namespace) as client:
        client.send(CloudEvent(source="/crm", type="customer.created", data={}), channel_name=channel)
        with pytest.raises(ResourceNotFoundError):
            client.send(CloudEvent(source="/crm", type="x", data={}), channel_name="nope", retry_total=0)
        with pytest.raises(HttpResponseError, match="aeg-channel-name"):
            client.send(CloudEvent(source="/crm", type="x", data={}), retry_total=0)
    [delivery] = _delivered(hook, 1)
    assert delivery.body["type"] == "customer.created"
