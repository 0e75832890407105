"""`polybus emulate` for people: busy ports, a stable azure key, `emulate all`, admin hints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import pytest

from polybus.adapters import connect
from polybus.core.config import parse_config
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.errors import AdapterError
from polybus.core.events import new_event
from tests.cli.test_emulate import REPO, emulate

HANG_GUARD = 30  # seconds: a hang fails the test instead of the suite's 300 s timeout


def _polybus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polybus", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=HANG_GUARD,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_busy_port_is_one_line_and_exit_1(provider: str, busy_port: int) -> None:
    """A port in use is reported in one line naming it, exit 1, no traceback and no hang."""
    result = _polybus("emulate", provider, "--port", str(busy_port))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"127.0.0.1:{busy_port}" in result.stderr and "--port" in result.stderr


def test_moto_on_a_busy_port_raises_instead_of_hanging(busy_port: int) -> None:
    """The aws emulator's own start refuses a busy port with OSError (moto alone waits forever)."""
    from polybus.adapters.aws.emulator import start

    with pytest.raises(OSError, match=f"127.0.0.1:{busy_port}"):
        start("127.0.0.1", busy_port)


def test_azure_key_is_stable_by_default() -> None:
    """Two starts of the azure emulator print the same, documented key."""
    from polybus.adapters.azure.emulator.sas import DEFAULT_EMULATOR_KEY

    keys = []
    for _ in range(2):
        with emulate("azure") as (_proc, printed):
            keys.append(tomllib.loads(printed.toml)["azure"]["key"])
    assert keys == [DEFAULT_EMULATOR_KEY, DEFAULT_EMULATOR_KEY]


def test_azure_key_option_is_the_key_clients_must_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--key` is printed in the table and is the key the emulator checks."""
    key = "bXktb3duLWtleS1mb3ItdGhlLWVtdWxhdG9yLTMyYg=="
    with emulate("azure", "--key", key) as (_proc, printed):
        table = tomllib.loads(printed.toml)
        assert table["azure"]["key"] == key
        wrong = {**table, "azure": {**table["azure"], "key": "d3Jvbmc="}}
        bus = connect(parse_config(wrong, source="emulate"))
        try:
            with pytest.raises(AdapterError):
                bus.publish(new_event("com.example.k", "/k", {"n": 1}), topic="keyed")
        finally:
            bus.close()


def test_key_option_is_refused_for_emulators_without_keys() -> None:
    """`--key` with an emulator that checks no key is a usage error (exit 2)."""
    result = _polybus("emulate", "gcp", "--key", "x")
    assert result.returncode == 2 and "checks no key" in result.stderr


def test_emulate_all_prints_every_table_and_export() -> None:
    """`emulate all` starts the three emulators and prints one pasteable block for them."""
    with emulate("all") as (_proc, printed):
        document = tomllib.loads(printed.toml)
        assert document["provider"] == "aws"
        assert {"aws", "azure", "gcp"} <= set(document)
        for name in ("aws", "azure", "gcp"):
            assert parse_config({**document, "provider": name}).settings(name)
        assert {"AWS_ENDPOINT_URL", "PUBSUB_EMULATOR_HOST"} <= set(printed.exports)


def test_all_takes_no_single_port() -> None:
    """`emulate all --port 5000` is a usage error: three emulators cannot share one port."""
    result = _polybus("emulate", "all", "--port", "5000")
    assert result.returncode == 2 and "only 0" in result.stderr


def test_missing_subscription_without_admin_says_what_to_set() -> None:
    """Against the emulator without admin = true, a missing subscription names the fix."""
    from polybus.adapters.azure.plugin import make_adapter, start_emulator

    emulator = start_emulator("127.0.0.1", 0)
    try:
        adapter = make_adapter({**emulator.settings(), "admin": False})
        try:
            with pytest.raises(AdapterError, match="admin = true"):
                adapter.provision(SubscriptionSpec("billing", "orders", None, DeliveryPolicy()))
        finally:
            adapter.close()
    finally:
        emulator.stop()


def test_sigterm_stops_the_emulators_cleanly() -> None:
    """`kill` (SIGTERM) stops the emulators as Ctrl-C does: 'stopping', exit 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polybus", "emulate", "gcp", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("# ready"):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 0 and "stopping" in out
