"""The aws emulator (moto's server) as a RunningEmulator, reached from its own settings.

moto keeps its state in module globals, so a second server in this process
shares buses and queues with the session's one: names here are unique.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import boto3
import pytest

from polybus.adapters import connect
from polybus.adapters.aws.emulator import AwsEmulator
from polybus.core.config import Config
from polybus.core.emulation import RunningEmulator
from polybus.core.events import new_event
from polybus.core.plugins import collect_adapters, make_plugin_manager
from tests.fixtures.aws import ISOLATION_ENV


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    """A second moto server started the way `polybus emulate aws` starts it (port 0)."""
    for name, value in ISOLATION_ENV.items():
        monkeypatch.setenv(name, value)
    pm = make_plugin_manager(("polybus.adapters.aws.plugin",), load_entrypoints=False)
    spec = collect_adapters(pm)["aws"].info.emulator
    assert spec is not None
    emulator = spec.launch("127.0.0.1", 0)
    yield emulator
    emulator.stop()


def test_emulator_satisfies_running_emulator(launched: RunningEmulator) -> None:
    """The launched emulator has every RunningEmulator member, settings naming it and dummy credentials."""
    assert isinstance(launched, AwsEmulator)
    members = {name for name in vars(RunningEmulator) if not name.startswith("_")}
    assert members == {"endpoint", "settings", "environment", "stop"}
    assert all(hasattr(launched, name) for name in members)
    assert launched.endpoint.startswith("http://127.0.0.1:")
    assert not launched.endpoint.endswith(":0")
    assert launched.settings() == {"region": "us-east-1", "endpoint_url": launched.endpoint}
    env = launched.environment()
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_ENDPOINT_URL"] == launched.endpoint


def test_settings_reach_a_working_adapter_through_connect(
    launched: RunningEmulator, monkeypatch: pytest.MonkeyPatch, unique: Callable[[str], str]
) -> None:
    """connect() with the emulator's settings and environment gives a bus that delivers events."""
    for name, value in launched.environment().items():
        if name != "AWS_ENDPOINT_URL":  # the settings alone must find the server
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    pm = make_plugin_manager(("polybus.adapters.aws.plugin",), load_entrypoints=False)
    bus = connect(Config("aws", {"aws": dict(launched.settings())}), pm=pm)
    seen: list[str] = []
    topic, sub = unique("emu"), unique("emu-sub")
    bus.subscribe(sub, lambda event: seen.append(event.get_id()), topic=topic)
    event = new_event("com.example.emu", "/emu", {"n": 1})
    bus.publish([event], topic=topic)
    for _ in range(10):
        if seen:
            break
        bus.poll(sub, timeout=1.0)
    bus.close()
    assert seen == [event.get_id()]


def test_environment_alone_points_boto3_at_the_emulator(
    launched: RunningEmulator, monkeypatch: pytest.MonkeyPatch, unique: Callable[[str], str]
) -> None:
    """A plain boto3 client with no endpoint argument reaches moto through environment()."""
    for name, value in launched.environment().items():
        monkeypatch.setenv(name, value)
    sqs = boto3.session.Session().client("sqs")
    url = sqs.create_queue(QueueName=unique("env-only"))["QueueUrl"]
    assert url.startswith(launched.endpoint)
    assert url in sqs.list_queues(QueueNamePrefix=unique("env-only"))["QueueUrls"]
    sqs.close()


def test_stop_releases_the_port_and_is_idempotent(launched: RunningEmulator) -> None:
    """After stop() nothing listens on the endpoint any more; stopping again is a no-op."""
    host, port = urlsplit(launched.endpoint).hostname, urlsplit(launched.endpoint).port
    launched.stop()
    launched.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()
