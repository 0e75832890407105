"""Pytest plugin: a Pub/Sub emulator for the session, real clients and adapters connected to it.

Shut down in the order protocols.md gives (streaming futures, subscriber,
publisher, then the server), else the subscriber spends seconds reconnecting:
the clients and adapters here are function-scoped and the emulator outlives
them all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.gcp.emulator import PubSubEmulator, start_emulator
from tests.gcp.helpers import PubSubClients

PROJECT = "polybus-test"


@pytest.fixture(scope="session")
def gcp_emulator() -> Iterator[PubSubEmulator]:
    """One emulator on a free loopback port for the whole session."""
    with start_emulator() as emulator:
        yield emulator


@pytest.fixture
def pubsub(
    gcp_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PubSubClients]:
    """Publisher (ordering on) and subscriber clients using PUBSUB_EMULATOR_HOST."""
    from google.cloud import pubsub_v1

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", gcp_emulator.host_port)
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.005),
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
    )
    subscriber = pubsub_v1.SubscriberClient()
    yield PubSubClients(publisher, subscriber, PROJECT, uuid.uuid4().hex[:8])
    subscriber.close()
    publisher.stop()


@pytest.fixture
def gcp_adapter_factory(gcp_emulator: PubSubEmulator) -> Iterator[Callable[[], Any]]:
    """A zero-argument callable making fresh gcp adapters on the emulator (closed at teardown)."""
    from adapters.gcp.plugin import make_adapter

    made: list[Any] = []

    def factory() -> Any:
        adapter = make_adapter({"project": PROJECT, "emulator_host": gcp_emulator.host_port})
        made.append(adapter)
        return adapter

    yield factory
    for adapter in made:
        adapter.close()
