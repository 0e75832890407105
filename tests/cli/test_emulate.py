"""`polybus emulate NAME` starts any registered emulator, prints what reaches it, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from polybus.adapters import connect
from polybus.core.config import parse_config
from polybus.core.events import new_event

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Printed:
    """What `polybus emulate` printed: its first line, the polybus.toml text and the exports."""

    headline: str
    toml: str
    exports: dict[str, str]


def _as_in_a_terminal() -> None:
    """Ctrl-C reaches the child as in a terminal, even when this run was started in the background.

    A shell starts background jobs with SIGINT ignored, and an ignored signal
    stays ignored across exec: the emulator would never see the Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def emulate(provider: str, *extra: str) -> Iterator[tuple[subprocess.Popen[str], Printed]]:
    """Run `polybus emulate PROVIDER --port 0 [EXTRA...]` and yield it with what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polybus", "emulate", provider, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=_as_in_a_terminal,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("# ready"):
        line = proc.stdout.readline()
        assert line, f"emulator exited early: {proc.stderr.read() if proc.stderr else ''}"
        lines.append(line.rstrip("\n"))
    toml_start = lines.index("# polybus.toml") + 1
    toml_end = lines.index("", toml_start)
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
    )
    try:
        yield proc, Printed(lines[0], "\n".join(lines[toml_start:toml_end]), exports)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_printed_settings_reach_a_working_bus(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printed polybus.toml and exports, used as they are, give a bus that delivers."""
    with emulate(provider) as (proc, printed):
        for name, value in printed.exports.items():
            monkeypatch.setenv(name, value)
        assert printed.headline.startswith(f"{provider} emulator listening on ")
        config = parse_config(tomllib.loads(printed.toml), source="emulate")
        assert config.provider == provider
        bus = connect(config)
        try:
            seen: list[str] = []
            topic, sub = f"t-{uuid.uuid4().hex[:6]}", f"s-{uuid.uuid4().hex[:6]}"
            bus.subscribe(sub, lambda e: seen.append(e.get_id()), topic=topic)
            event = new_event("com.example.emulated", "/emulate", {"n": 1})
            bus.publish(event, topic=topic)
            bus.drain(idle=2.0, limit=30.0)
            assert seen == [event.get_id()]
        finally:
            bus.close()
    assert proc.returncode == 0


def test_gcp_export_serves_the_raw_client() -> None:
    """The printed PUBSUB_EMULATOR_HOST works for the real Pub/Sub client on its own."""
    from google.cloud import pubsub_v1

    with emulate("gcp") as (_proc, printed):
        os.environ["PUBSUB_EMULATOR_HOST"] = printed.exports["PUBSUB_EMULATOR_HOST"]
        try:
            publisher = pubsub_v1.PublisherClient()
            path = publisher.topic_path("emulate-test", f"t-{uuid.uuid4().hex[:6]}")
            publisher.create_topic(name=path)
            assert publisher.get_topic(topic=path).name == path
            publisher.stop()
        finally:
            del os.environ["PUBSUB_EMULATOR_HOST"]


def test_unknown_emulator_is_one_clear_error() -> None:
    """A provider without an emulator exits 1 naming those that have one, never a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "polybus", "emulate", "local"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "aws, azure, gcp" in result.stderr
