"""Push mode of the azure adapter: handshakes, settle -> HTTP status, timeouts, dead letters."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polybus.adapters.azure.adapter import AzureAdapter
from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.plugin import make_adapter
from polybus.adapters.azure.provisioning import EmulatorAdmin
from polybus.adapters.azure.push import Inbox, WebhookReceiver
from polybus.core.contract import Delivery, DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, ConfigError
from polybus.core.events import new_event

Factory = Callable[..., AzureAdapter]


@pytest.fixture
def push_adapter(fast_emulator: EventGridEmulator) -> Iterator[Factory]:
    """Makes push-mode adapters on the fast emulator (closed at teardown)."""
    made: list[AzureAdapter] = []

    def factory(**extra: Any) -> AzureAdapter:
        settings = {
            "endpoint": fast_emulator.endpoint,
            "key": fast_emulator.key,
            "admin": True,
            "namespace": False,
            "delivery": "push",
            "settle_timeout": 3.0,
            **extra,
        }
        adapter = make_adapter(settings)
        assert isinstance(adapter, AzureAdapter)
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()


def _receive(adapter: AzureAdapter, sub: str, n: int, dead: bool = False) -> list[Delivery]:
    out: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        read = adapter.receive_dead_letters if dead else adapter.receive
        out.extend(read(sub, n - len(out), 0.2))
    return out


def _statuses(admin: EmulatorAdmin, topic: str, sub: str) -> list[int | None]:
    return [a["status"] for a in admin.webhook_deliveries(topic, sub)]


def test_push_needs_basic_topics_and_a_settle_timeout_below_30_seconds() -> None:
    """delivery=push with namespace topics, an unknown mode and a 30 s settle timeout are all reported."""
    base = {"endpoint": "http://127.0.0.1:1", "key": "k"}
    with pytest.raises(ConfigError) as caught:
        make_adapter({**base, "delivery": "push", "settle_timeout": 30})
    assert {p.field for p in caught.value.problems} == {"azure.namespace", "azure.settle_timeout"}
    with pytest.raises(ConfigError) as caught:
        make_adapter({**base, "delivery": "webhook", "webhook_url": "ftp://x"})
    assert {p.field for p in caught.value.problems} == {"azure.delivery", "azure.webhook_url"}


def test_basic_topics_without_push_refuse_subscriptions(fast_emulator: EventGridEmulator) -> None:
    """Basic topics in pull mode cannot subscribe, and the error says to use delivery = push."""
    adapter = make_adapter(
        {"endpoint": fast_emulator.endpoint, "key": fast_emulator.key, "namespace": False}
    )
    try:
        with pytest.raises(AdapterError, match='delivery = "push"'):
            adapter.provision(SubscriptionSpec("s", "t"))
    finally:
        adapter.close()


def test_cloudevents_handshake_activates_the_subscription(
    push_adapter: Factory, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """Provisioning passes the OPTIONS abuse protection: the subscription is Succeeded."""
    adapter = push_adapter()
    topic, sub = name("hs"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    state = fast_admin.webhook_subscription(topic, sub)
    assert state["provisioningState"] == "Succeeded"
    assert state["endpointUrl"] == adapter.endpoint_url(sub)
    request = urllib.request.Request(
        state["endpointUrl"],
        method="OPTIONS",
        headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
        assert response.headers["WebHook-Allowed-Rate"] == "*"


def test_eventgrid_schema_validation_event_is_echoed(
    fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """An Event Grid schema subscription to the receiver validates by the echoed code."""
    receiver = WebhookReceiver()
    try:
        topic, sub = name("egs"), name("sub")
        receiver.inboxes[sub] = Inbox(settle_timeout=1.0)
        fast_admin.put_basic_topic(topic, input_schema="EventGridSchema")
        state = fast_admin.put_webhook_subscription(topic, sub, receiver.url_for(sub))
        assert state["provisioningState"] == "Succeeded"
    finally:
        receiver.close()


def test_ack_answers_200_and_nack_a_retried_503(
    push_adapter: Factory, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """A nack answers 503, Event Grid's schedule redelivers with the next attempt, an ack answers 200."""
    adapter = push_adapter()
    topic, sub = name("st"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("com.example.st", "/st", {"n": 1})])
    [first] = _receive(adapter, sub, 1)
    first.nack()
    [second] = _receive(adapter, sub, 1)
    assert (first.attempt, second.attempt) == (1, 2)
    second.ack()
    deadline = time.monotonic() + 5
    while len(_statuses(fast_admin, topic, sub)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    log = fast_admin.webhook_deliveries(topic, sub)
    assert [(a["attempt"], a["status"]) for a in log] == [(1, 503), (2, 200)]
    assert log[0]["next_delay"] == 10.0  # the documented first retry, not the nack's delay


def test_unsettled_delivery_times_out_retryable_and_comes_back(
    push_adapter: Factory, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """A delivery nobody settles within settle_timeout is answered 503 and redelivered; a late ack only logs."""
    adapter = push_adapter(settle_timeout=0.3)
    topic, sub = name("to"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("com.example.to", "/to")])
    [stale] = _receive(adapter, sub, 1)
    [again] = _receive(adapter, sub, 1)
    stale.ack()  # too late: logged, not raised
    again.ack()
    assert again.attempt == 2
    assert _statuses(fast_admin, topic, sub)[0] == 503


def test_dead_letter_answers_400_and_the_dead_letter_is_leased_until_acked(
    push_adapter: Factory, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """dead_letter -> 400 -> Event Grid dead-letters it; one reader at a time; ack deletes it."""
    adapter = push_adapter()
    topic, sub = name("dl"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    event = new_event("com.example.dl", "/dl", {"bad": True}, extensions={"vip": True})
    adapter.publish(topic, [event])
    [delivery] = _receive(adapter, sub, 1)
    delivery.dead_letter("cannot parse")
    [dead] = _receive(adapter, sub, 1, dead=True)
    [record] = fast_admin.webhook_dead_letters(topic, sub)
    assert record["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert dead.event.get_attributes() == event.get_attributes()
    assert adapter.receive_dead_letters(sub, 10, 0.1) == []  # leased
    dead.nack()
    [again] = _receive(adapter, sub, 1, dead=True)
    again.ack()
    assert fast_admin.webhook_dead_letters(topic, sub) == []


def test_ordered_batch_redelivers_only_the_nacked_member(
    push_adapter: Factory, name: Callable[[str], str]
) -> None:
    """An ordered subscription gets a publish call as one batch, in order; acked members are not redelivered."""
    adapter = push_adapter()
    topic, sub = name("ord"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ordered=True)))
    events = [
        new_event("com.example.seq", "/o", {"n": i}, extensions={"partitionkey": "k"})
        for i in range(3)
    ]
    adapter.publish(topic, events)
    batch = _receive(adapter, sub, 3)
    assert [d.event.get_data()["n"] for d in batch] == [0, 1, 2]
    batch[0].ack()
    batch[1].nack()
    batch[2].ack()
    [again] = _receive(adapter, sub, 1)
    assert (again.event.get_data()["n"], again.attempt) == (1, 2)
    again.ack()
    assert adapter.receive(sub, 10, 0.3) == []


def test_delete_subscription_removes_the_webhook_subscription(
    push_adapter: Factory, fast_admin: EmulatorAdmin, name: Callable[[str], str]
) -> None:
    """delete_subscription deletes the Event Grid subscription and is idempotent."""
    adapter = push_adapter()
    topic, sub = name("del"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.delete_subscription(sub)
    adapter.delete_subscription(sub)
    with pytest.raises(Exception, match="404"):
        fast_admin.webhook_subscription(topic, sub)
    with pytest.raises(AdapterError, match="unknown push subscription"):
        adapter.receive(sub, 1, 0.0)


def test_receiver_refuses_undecodable_deliveries_without_retry() -> None:
    """A notification that is not a CloudEvent gets 400 (never retried); unknown paths get 404."""
    receiver = WebhookReceiver()
    try:
        receiver.inboxes["s"] = Inbox(settle_timeout=1.0)
        for url, status in ((receiver.url_for("s"), 400), (receiver.url_for("unknown"), 404)):
            request = urllib.request.Request(
                url,
                data=json.dumps({"specversion": "1.0"}).encode(),
                method="POST",
                headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=5)
            caught.value.close()
            assert caught.value.code == status
    finally:
        receiver.close()
