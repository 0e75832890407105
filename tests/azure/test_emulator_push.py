"""Basic topics: auth, limits, webhook handshakes, push retries and dead-lettering."""

from __future__ import annotations

import random
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.emulator.push import RETRY_SCHEDULE, retry_delay
from polybus.adapters.azure.errors import AdminError
from polybus.adapters.azure.provisioning import EmulatorAdmin
from tests.azure.webhook import Webhook, serve_webhook


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, str]]:
    """A recording webhook endpoint, stopped at teardown."""
    hook = Webhook()
    server, url = serve_webhook(hook)
    yield hook, url
    server.shutdown()
    server.server_close()


def _wait_for(check: Callable[[], Any], limit: float = 10.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def _send(emulator: EventGridEmulator, topic: str, events: Any, credential: Any = None) -> None:
    client = EventGridPublisherClient(
        emulator.topic_endpoint(topic), credential or AzureKeyCredential(emulator.key)
    )
    with client:
        client.send(events, retry_total=0)


def test_cloudevents_are_pushed_with_the_delivery_headers(
    azure_emulator, azure_admin, webhook, name
):
    """A CloudEvents-schema topic delivers each event as structured JSON with aeg-* headers."""
    hook, url = webhook
    topic, sub = name("basic"), name("hook")
    azure_admin.put_basic_topic(topic)
    assert azure_admin.put_webhook_subscription(topic, sub, url)["provisioningState"] == "Succeeded"
    assert hook.requests[0].method == "OPTIONS"
    assert hook.requests[0].headers["WebHook-Request-Origin"] == "eventgrid.azure.net"
    event = CloudEvent(
        source="/shop", type="order.placed", data={"n": 1}, extensions={"tenant": "a"}
    )
    _send(azure_emulator, topic, [event])
    (delivery,) = _wait_for(hook.notifications)
    assert delivery.headers["Content-Type"].startswith("application/cloudevents+json")
    assert delivery.headers["aeg-subscription-name"] == sub.upper()
    assert delivery.headers["aeg-delivery-count"] == "0"
    assert delivery.body["id"] == event.id
    assert delivery.body["tenant"] == "a"
    assert delivery.body["data"] == {"n": 1}


def test_sas_token_is_accepted_and_checked(azure_emulator, azure_admin, name):
    """A valid SAS token publishes; expired, wrongly signed or other-topic tokens get 401."""
    topic = name("sas")
    azure_admin.put_basic_topic(topic)
    endpoint = azure_emulator.topic_endpoint(topic)
    future = datetime.now(UTC) + timedelta(hours=1)
    event = CloudEvent(source="/s", type="t")
    _send(
        azure_emulator,
        topic,
        [event],
        AzureSasCredential(generate_sas(endpoint, azure_emulator.key, future)),
    )
    bad_tokens = [
        generate_sas(endpoint, azure_emulator.key, datetime.now(UTC) - timedelta(minutes=1)),
        generate_sas(endpoint, "b3RoZXIta2V5LW90aGVyLWtleQ==", future),
        generate_sas(azure_emulator.topic_endpoint("elsewhere"), azure_emulator.key, future),
    ]
    for token in bad_tokens:
        with pytest.raises(ClientAuthenticationError):
            _send(azure_emulator, topic, [event], AzureSasCredential(token))


def test_wrong_key_on_a_basic_topic_is_401(azure_emulator, azure_admin, name):
    """aeg-sas-key must be the emulator's key."""
    topic = name("key")
    azure_admin.put_basic_topic(topic)
    with pytest.raises(ClientAuthenticationError):
        _send(
            azure_emulator,
            topic,
            [CloudEvent(source="/s", type="t")],
            AzureKeyCredential("bm9wZQ=="),
        )


def test_basic_publish_over_the_request_limit_is_413(azure_emulator, azure_admin, name):
    """A batch over 1,536,000 bytes is refused with 413 and Azure's message."""
    topic = name("big")
    azure_admin.put_basic_topic(topic)
    events = [CloudEvent(source="/s", type="t", data="x" * 300_000) for _ in range(6)]
    with pytest.raises(HttpResponseError) as caught:
        _send(azure_emulator, topic, events)
    assert caught.value.status_code == 413
    assert "The maximum size (1536000) has been exceeded." in str(caught.value)


def test_eventgrid_schema_handshake_and_delivery(azure_emulator, azure_admin, webhook, name):
    """Event Grid schema: the validation event is echoed, then events arrive as a JSON array."""
    hook, url = webhook
    topic, sub = name("egs"), name("hook")
    azure_admin.put_basic_topic(topic, input_schema="EventGridSchema")
    assert azure_admin.put_webhook_subscription(topic, sub, url)["provisioningState"] == "Succeeded"
    validation = hook.requests[0]
    assert validation.headers["aeg-event-type"] == "SubscriptionValidation"
    assert validation.body[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert {"validationCode", "validationUrl"} <= validation.body[0]["data"].keys()
    event = EventGridEvent(
        subject="orders/1", event_type="order.placed", data={"n": 1}, data_version="1.0"
    )
    _send(azure_emulator, topic, [event])
    (delivery,) = _wait_for(hook.notifications)
    assert isinstance(delivery.body, list)
    assert delivery.body[0]["eventType"] == "order.placed"
    assert delivery.body[0]["subject"] == "orders/1"


def test_manual_validation_through_the_validation_url(azure_emulator, azure_admin, webhook, name):
    """Without the echo the subscription waits; a GET on validationUrl activates it."""
    hook, url = webhook
    hook.echo_validation = False
    topic, sub = name("manual"), name("hook")
    azure_admin.put_basic_topic(topic, input_schema="EventGridSchema")
    created = azure_admin.put_webhook_subscription(topic, sub, url)
    assert created["provisioningState"] == "AwaitingManualAction"
    with urllib.request.urlopen(hook.requests[0].body[0]["data"]["validationUrl"]) as answer:
        assert answer.status == 200
    assert azure_admin.webhook_subscription(topic, sub)["provisioningState"] == "Succeeded"


def test_cloudevents_handshake_refused_fails_the_subscription(azure_admin, webhook, name):
    """An endpoint that does not grant WebHook-Allowed-Origin cannot be subscribed."""
    hook, url = webhook
    hook.allow_origin = None
    topic = name("refuse")
    azure_admin.put_basic_topic(topic)
    with pytest.raises(AdminError) as caught:
        azure_admin.put_webhook_subscription(topic, name("hook"), url)
    assert caught.value.status == 400


def test_push_filters_deliver_only_matching_events(azure_emulator, azure_admin, webhook, name):
    """includedEventTypes, subjectEndsWith and a numeric advanced filter are all applied."""
    hook, url = webhook
    topic, sub = name("filt"), name("hook")
    azure_admin.put_basic_topic(topic)
    flt = {
        "includedEventTypes": ["order.placed"],
        "subjectEndsWith": ".JSON",
        "advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.amount", "value": 10}
        ],
    }
    azure_admin.put_webhook_subscription(topic, sub, url, filter=flt)
    events = [
        CloudEvent(source="/s", type="order.placed", subject="a.json", data={"amount": 11}),
        CloudEvent(source="/s", type="order.placed", subject="b.json", data={"amount": 5}),
        CloudEvent(source="/s", type="order.paid", subject="c.json", data={"amount": 50}),
        CloudEvent(source="/s", type="order.placed", subject="d.xml", data={"amount": 50}),
        CloudEvent(source="/s", type="order.placed", subject="e.json", data={"amount": 99}),
    ]
    _send(azure_emulator, topic, events)
    got = _wait_for(lambda: len(hook.notifications()) >= 2 and hook.notifications())
    assert sorted(r.body["subject"] for r in got) == ["a.json", "e.json"]


def test_failed_deliveries_follow_the_schedule_then_dead_letter(
    fast_emulator, fast_admin, webhook, name
):
    """503s are retried at 10 s, 30 s, 1 min (scaled), then dead-lettered with the documented fields."""
    hook, url = webhook
    hook.status_for = lambda n: 503
    topic, sub = name("retry"), name("hook")
    fast_admin.put_basic_topic(topic)
    fast_admin.put_webhook_subscription(topic, sub, url, max_delivery_attempts=4, dead_letter=True)
    event = CloudEvent(source="/s", type="t", data={"k": "v"})
    _send(fast_emulator, topic, [event])
    (dead,) = _wait_for(lambda: fast_admin.webhook_dead_letters(topic, sub))
    log = fast_admin.webhook_deliveries(topic, sub)
    assert [a["attempt"] for a in log] == [1, 2, 3, 4]
    assert [a["next_delay"] for a in log] == [10.0, 30.0, 60.0, None]
    assert [r.headers["aeg-delivery-count"] for r in hook.notifications()] == ["0", "1", "2", "3"]
    assert dead["id"] == event.id
    assert dead["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert dead["deliveryAttempts"] == 4
    assert dead["lastDeliveryOutcome"] == "ServiceUnavailable"
    assert dead["lastHttpStatusCode"] == 503
    assert {"publishTime", "lastDeliveryAttemptTime"} <= dead.keys()


def test_bad_request_is_not_retried(fast_emulator, fast_admin, webhook, name):
    """A 400 answer dead-letters at once, without retries."""
    hook, url = webhook
    hook.status_for = lambda n: 400
    topic, sub = name("bad"), name("hook")
    fast_admin.put_basic_topic(topic)
    fast_admin.put_webhook_subscription(topic, sub, url, dead_letter=True)
    _send(fast_emulator, topic, [CloudEvent(source="/s", type="t")])
    (dead,) = _wait_for(lambda: fast_admin.webhook_dead_letters(topic, sub))
    assert dead["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert dead["deliveryAttempts"] == 1
    assert len(hook.notifications()) == 1


def test_delivery_recovers_after_transient_failures(fast_emulator, fast_admin, webhook, name):
    """Two 500s then a 200: three attempts, nothing dead-lettered."""
    hook, url = webhook
    hook.status_for = lambda n: 500 if n <= 2 else 200
    topic, sub = name("flaky"), name("hook")
    fast_admin.put_basic_topic(topic)
    fast_admin.put_webhook_subscription(topic, sub, url, dead_letter=True)
    _send(fast_emulator, topic, [CloudEvent(source="/s", type="t")])
    log = _wait_for(
        lambda: [a for a in fast_admin.webhook_deliveries(topic, sub) if a["status"] == 200]
    )
    assert log[0]["attempt"] == 3
    assert fast_admin.webhook_dead_letters(topic, sub) == []


def test_time_to_live_ends_retries(webhook, name):
    """With a 1-minute TTL the third retry (at 100 s) is never made: TimeToLiveExceeded."""
    hook, url = webhook
    hook.status_for = lambda n: 503
    topic, sub = name("ttl"), name("hook")
    # 100x faster, not 1000x: a 60 ms TTL left too little room for the webhook's round trips.
    with EventGridEmulator(time_scale=0.01, retry_jitter=0.0, response_timeout=5.0) as emulator:
        admin = EmulatorAdmin(emulator.endpoint, emulator.key)
        admin.put_basic_topic(topic)
        admin.put_webhook_subscription(topic, sub, url, ttl_minutes=1, dead_letter=True)
        _send(emulator, topic, [CloudEvent(source="/s", type="t")])
        (dead,) = _wait_for(lambda: admin.webhook_dead_letters(topic, sub))
    assert dead["deadLetterReason"] == "TimeToLiveExceeded"
    assert dead["deliveryAttempts"] == 3


def test_retry_schedule_matches_the_documented_steps():
    """10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h, then every 12 h; jitter stays in bounds."""
    rng = random.Random(1)
    steps = [retry_delay(n, 0.0, rng) for n in range(1, 13)]
    assert steps == [*RETRY_SCHEDULE, 43200.0, 43200.0, 43200.0]
    assert steps[:9] == [10, 30, 60, 300, 600, 1800, 3600, 10800, 21600]
    jittered = [retry_delay(1, 0.1, rng) for _ in range(200)]
    assert all(9.0 <= d <= 11.0 for d in jittered)
    assert len(set(jittered)) > 1
