"""An adapter configured without `admin` (as against real Azure) never touches the emulator's admin API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from polybus.adapters.azure.adapter import AzureAdapter
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.errors import AdminError
from polybus.adapters.azure.plugin import make_adapter
from polybus.adapters.azure.provisioning import EmulatorAdmin
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, PublishError
from polybus.core.events import new_event


@pytest.fixture
def plain(azure_emulator: EventGridEmulator) -> Iterator[AzureAdapter]:
    """A pull adapter on the emulator with admin off: it must behave as against real Azure."""
    adapter = make_adapter({"endpoint": azure_emulator.endpoint, "key": azure_emulator.key})
    assert isinstance(adapter, AzureAdapter)
    yield adapter
    adapter.close()


def _exists(request: Callable[[], object]) -> bool:
    """Whether the admin API finds the resource (404: it does not)."""
    try:
        request()
    except AdminError as exc:
        if exc.status != 404:
            raise
        return False
    return True


def test_no_admin_client_is_built(plain: AzureAdapter) -> None:
    """Without `admin = true` the adapter holds no client of the emulator's admin API."""
    assert plain.admin is None


def test_missing_subscription_is_named_not_created(
    plain: AzureAdapter, azure_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """Provisioning a subscription that does not exist raises an error naming it; nothing is created."""
    topic, sub = name("absent"), name("sub")
    with pytest.raises(AdapterError, match=f"{sub}.*does not exist.*admin = true"):
        plain.provision(SubscriptionSpec(sub, topic))
    assert not _exists(lambda: azure_admin.request("GET", f"/admin/namespace/topics/{topic}"))
    assert not _exists(lambda: azure_admin.request("GET", f"/admin/namespace/topics/{sub}-dlq"))


def test_publish_to_a_missing_topic_is_refused_not_created(
    plain: AzureAdapter, azure_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """Publishing to a topic nobody created fails with 404 for each event; the topic stays absent."""
    topic = name("nowhere")
    event = new_event("t", "/s")
    with pytest.raises(PublishError) as refused:
        plain.publish(topic, [event])
    failure = refused.value.failures[event.get_id()]
    assert "404" in failure and "admin = true" in failure  # says how to make it exist
    assert not _exists(lambda: azure_admin.request("GET", f"/admin/namespace/topics/{topic}"))


def test_existing_resources_are_used_as_they_are(
    plain: AzureAdapter, azure_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """Resources made elsewhere (ARM, here the admin API) are used unchanged; the filter stays client-side."""
    topic, sub = name("given"), name("sub")
    azure_admin.put_namespace_topic(topic)
    azure_admin.put_pull_subscription(topic, sub, max_delivery_count=7, lock_duration=45.0)
    flt_spec = SubscriptionSpec(sub, topic, policy=DeliveryPolicy(max_delivery_attempts=3))
    assert plain.provision(flt_spec) is None
    state = azure_admin.pull_subscription(topic, sub)
    assert (state["maxDeliveryCount"], state["lockDurationInSeconds"]) == (7, 45.0)
    assert state["deadLetterTopic"] is None
    plain.publish(topic, [new_event("t", "/s")])
    (delivery,) = plain.receive(sub, 1, 5.0)
    delivery.ack()
    with pytest.raises(AdapterError, match="Blob storage"):
        plain.receive_dead_letters(sub, 1, 0.0)
    plain.delete_subscription(sub)
    assert azure_admin.pull_subscription(topic, sub)["name"] == sub  # not deleted either
