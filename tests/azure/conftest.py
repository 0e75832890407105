"""Azure test fixtures (beside tests/fixtures/azure.py): SDK clients and a fast emulator."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient

from polybus.adapters.azure.emulator import EventGridEmulator
from polybus.adapters.azure.provisioning import EmulatorAdmin


@pytest.fixture
def name() -> Callable[[str], str]:
    """Unique resource names per test, so tests never see each other's events."""
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


@pytest.fixture(scope="module")
def fast_emulator() -> Iterator[EventGridEmulator]:
    """An emulator whose retry and release delays run 1000x faster, without jitter."""
    with EventGridEmulator(time_scale=0.001, retry_jitter=0.0, response_timeout=5.0) as emulator:
        yield emulator


@pytest.fixture
def fast_admin(fast_emulator: EventGridEmulator) -> EmulatorAdmin:
    """The admin client of the fast emulator."""
    return EmulatorAdmin(fast_emulator.endpoint, fast_emulator.key)


class SdkClients:
    """Real azure-eventgrid clients against an emulator, with SDK retries off."""

    def __init__(self, emulator: EventGridEmulator) -> None:
        self.emulator = emulator
        self.made: list[EventGridPublisherClient | EventGridConsumerClient] = []

    def publisher(
        self, topic: str, emulator: EventGridEmulator | None = None
    ) -> EventGridPublisherClient:
        """A namespace-topic publisher."""
        emu = emulator or self.emulator
        client = EventGridPublisherClient(
            emu.endpoint, AzureKeyCredential(emu.key), namespace_topic=topic, retry_total=0
        )
        self.made.append(client)
        return client

    def consumer(
        self, topic: str, subscription: str, emulator: EventGridEmulator | None = None
    ) -> EventGridConsumerClient:
        """A pull consumer of one namespace subscription."""
        emu = emulator or self.emulator
        client = EventGridConsumerClient(
            emu.endpoint,
            AzureKeyCredential(emu.key),
            namespace_topic=topic,
            subscription=subscription,
            retry_total=0,
        )
        self.made.append(client)
        return client


@pytest.fixture
def sdk(azure_emulator: EventGridEmulator) -> Iterator[SdkClients]:
    """Makes real SDK clients against the session emulator (closed at teardown)."""
    clients = SdkClients(azure_emulator)
    yield clients
    for client in clients.made:
        client.close()


@pytest.fixture
def azure_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azure_emulator: EventGridEmulator
) -> None:
    """An `az` on PATH that hands out the emulator's key as an Entra ID token (what `az login` would)."""
    token = {
        "accessToken": azure_emulator.key,
        "expires_on": int(time.time()) + 3600,
        "tokenType": "Bearer",
    }
    script = tmp_path / "az"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{json.dumps(token)}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")  # skip the IMDS probe
    for variable in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(variable, raising=False)
