"""The azure adapter beyond the contract suite: config, names, batching, errors, close."""

from __future__ import annotations

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.azure.delivery import release_delay_for
from polybus.adapters.azure.filters import compile_filter
from polybus.adapters.azure.mapping import native_name
from polybus.adapters.azure.plugin import make_adapter, polybus_register_adapters
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError, ConfigError, PublishError
from polybus.core.events import new_event
from polybus.core.filters import parse_filter
from polybus.core.hookspecs import AdapterInfo
from polybus.core.sizing import MB


def test_config_problems_are_reported_together_before_any_network_call():
    """Unknown keys, a bad endpoint and a missing key come back in one ConfigError."""
    with pytest.raises(ConfigError) as caught:
        make_adapter({"endpoint": "eventgrid.example", "namespaces": True, "timeout": -1})
    fields = {p.field for p in caught.value.problems}
    assert {"azure.namespaces"} <= fields
    with pytest.raises(ConfigError) as caught:
        make_adapter({"endpoint": "eventgrid.example", "timeout": -1})
    assert {p.field for p in caught.value.problems} == {
        "azure.endpoint",
        "azure.key",
        "azure.timeout",
    }


def test_plugin_registers_everything_azure_specific():
    """The registration carries capabilities, sizing, the filter compiler, the emulator and `key`."""
    infos: list[AdapterInfo] = []
    polybus_register_adapters(infos.append)
    (info,) = infos
    assert (info.name, info.secret_keys) == ("azure", ("key", "webhook_secret"))
    caps = info.capabilities
    assert (caps.ordering, caps.replay, caps.native_dead_letter, caps.native_filters) == (
        False,
        False,
        True,
        True,
    )
    assert caps.delivery_modes == ("pull", "push") and caps.delivery_attempts == (1, 30)
    assert info.sizing is not None and caps.max_event_size == info.sizing.limit.limit == MB
    assert info.filters is not None and info.filters.compile is compile_filter
    assert info.emulator is not None and info.requires is not None
    assert info.requires.modules == ("azure.eventgrid",)
    assert info.sim_profile is not None and info.sim_profile.is_file()


def test_plugin_emulator_starts_and_points_the_adapter_at_itself(name):
    """The registered emulator starts on a free port; its settings make a working adapter."""
    infos: list[AdapterInfo] = []
    polybus_register_adapters(infos.append)
    (info,) = infos
    assert info.emulator is not None
    emulator = info.emulator.launch("127.0.0.1", 0)
    try:
        settings = dict(emulator.settings())
        assert settings["endpoint"] == emulator.endpoint and settings["admin"] is True
        assert emulator.environment() == {}
        adapter = info.factory(settings)
        topic, sub = name("emu"), name("sub")
        adapter.provision(SubscriptionSpec(sub, topic))
        adapter.publish(topic, [new_event("t", "/s")])
        (delivery,) = adapter.receive(sub, 1, 5.0)
        delivery.ack()
        adapter.close()
    finally:
        emulator.stop()


def test_names_are_mapped_to_valid_distinct_event_grid_names():
    """Valid names are kept; others are cleaned, cut to 50 characters and made distinct."""
    assert native_name("orders-eu") == "orders-eu"
    mapped = {native_name(n) for n in ("a.b", "a_b", "x" * 80, "ab")}
    assert len(mapped) == 4
    assert all(len(n) <= 50 and n.replace("-", "").isalnum() for n in mapped)


def test_nack_delays_round_up_to_event_grid_release_steps():
    """A nack never comes back earlier than asked: delays round up to 0/10/60/600/3600 s."""
    assert [release_delay_for(d) for d in (0, 0.1, 10, 11, 3599, 99999)] == [
        0,
        10,
        10,
        60,
        3600,
        3600,
    ]


def test_big_batches_are_split_to_fit_one_megabyte(azure_adapter_factory, name):
    """A batch over 1 MB is split into requests of at most 1 MB; every event arrives."""
    adapter = azure_adapter_factory()
    topic, sub = name("split"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    events = [new_event("t", "/s", "x" * 300_000, datacontenttype="text/plain") for _ in range(5)]
    adapter.publish(topic, events)
    got = []
    while len(got) < 5:
        got.extend(adapter.receive(sub, 10, 2.0))
    assert sorted(d.event.get_id() for d in got) == sorted(e.get_id() for e in events)
    for d in got:
        d.ack()


def test_filter_without_native_form_is_returned_as_residual(azure_adapter_factory, name):
    """What the Event Grid compiler cannot express natively comes back as the residual."""
    adapter = azure_adapter_factory()
    flt = parse_filter({"suffix": {"subject": "-test"}})
    residual = adapter.provision(SubscriptionSpec(name("sub"), name("t"), flt))
    assert residual is None or residual == flt


def test_close_releases_unsettled_deliveries(azure_adapter_factory, name):
    """Deliveries left unsettled at close are released for the next consumer at once."""
    first, second = azure_adapter_factory(), azure_adapter_factory()
    topic, sub = name("close"), name("sub")
    spec = SubscriptionSpec(sub, topic, policy=DeliveryPolicy(ack_deadline=300))
    first.provision(spec)
    second.provision(spec)
    event = new_event("t", "/s")
    first.publish(topic, [event])
    (held,) = first.receive(sub, 1, 5.0)
    first.close()
    (again,) = second.receive(sub, 1, 5.0)
    assert again.event.get_id() == held.event.get_id()
    assert again.attempt == 2
    again.ack()


def test_unknown_subscription_is_a_clear_error(azure_adapter_factory):
    """Receiving from a subscription the adapter does not know names the fix."""
    with pytest.raises(AdapterError, match="provision it first"):
        azure_adapter_factory().receive("never-provisioned", 1, 0.0)


def test_wrong_key_surfaces_as_publish_error_naming_each_event(azure_emulator, name):
    """An auth failure is not retried forever: PublishError names each refused event."""
    adapter = make_adapter({"endpoint": azure_emulator.endpoint, "key": "bm9wZQ==", "retries": 0})
    events: list[CloudEvent] = [new_event("t", "/s"), new_event("t", "/s")]
    try:
        with pytest.raises(PublishError) as caught:
            adapter.publish(name("t"), events)
    finally:
        adapter.close()
    assert set(caught.value.failures) == {e.get_id() for e in events}
    assert all("401" in why for why in caught.value.failures.values())


def test_settling_twice_is_refused(azure_adapter_factory, name):
    """A delivery is settled exactly once."""
    adapter = azure_adapter_factory()
    topic, sub = name("twice"), name("sub")
    adapter.provision(SubscriptionSpec(sub, topic))
    adapter.publish(topic, [new_event("t", "/s")])
    (delivery,) = adapter.receive(sub, 1, 5.0)
    delivery.ack()
    with pytest.raises(AdapterError):
        delivery.nack()
