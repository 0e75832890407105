"""One rig per provider: buses, a raw (SDK-level) poison, dead-letter reading, restarts.

A rig hides what differs between providers so the fault tests read the same
for all: `bus()` makes a Bus with a recorder of every outcome; `poison()`
publishes one undecodable message around polybus, with the provider's own
SDK or storage; `dead_letters()` reads (and removes) a subscription's dead
letters with their reasons; `restart()` kills the emulator and starts a new
one, with empty state, on the same port; `config_text()` is a polybus.toml
for `polybus run` in another process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters import available_adapters, plugin_manager
from polybus.core.bus import Bus
from polybus.core.contract import Adapter
from polybus.core.emulation import RunningEmulator
from polybus.core.hookspecs import hookimpl

PROVIDERS = ("local-memory", "local-durable", "gcp", "aws", "azure")
#: The issue's examples of a message another publisher could send.
BAD_TIME = {
    "specversion": "1.0",
    "id": "poison-1",
    "source": "/raw-publisher",
    "type": "com.example.poison",
    "time": "not-a-time",
    "datacontenttype": "application/json",
    "data": {"n": -1},
}
DEEP = ("[" * 2000 + "]" * 2000).encode()
AWS_ISOLATION = {
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Outcome:
    """One settled delivery, as the bus recorded it."""

    subscription: str
    event_id: str
    outcome: str  # acked, retried, dead-lettered, filtered
    error: str | None
    at: float


class Recorder:
    """Middleware plugin recording every handler outcome, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list[Outcome] = []

    @hookimpl
    def polybus_after_handle(
        self, event: CloudEvent, subscription: str, outcome: str, error: BaseException | None
    ) -> None:
        """Record one outcome."""
        text = None if error is None else f"{type(error).__name__}: {error}"
        with self.lock:
            self.outcomes.append(
                Outcome(subscription, event.get_id(), outcome, text, time.monotonic())
            )

    def of(self, subscription: str, outcome: str | None = None) -> list[Outcome]:
        """Outcomes of `subscription` (only `outcome` ones when given)."""
        with self.lock:
            return [
                o
                for o in self.outcomes
                if o.subscription == subscription and outcome in (None, o.outcome)
            ]


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter read back: its event (a stand-in when undecodable) and why."""

    event: CloudEvent
    reason: str


class Rig:
    """A provider under test."""

    name = ""
    provider = ""
    short_ack_deadline = 2.0  # the shortest lease the slow-handler test uses
    can_restart = True
    crosses_processes = True
    has_raw_path = True

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.recorder = Recorder()
        self._buses: list[Bus] = []

    def settings(self) -> dict[str, Any]:
        """The provider's configuration table."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Environment a separate process needs to reach the provider."""
        return {}

    def make_adapter(self) -> Adapter:
        """A fresh adapter on this provider."""
        info = available_adapters()[self.provider].info
        return info.factory(self.settings())

    def bus(self) -> Bus:
        """A Bus recording every outcome in `self.recorder` (closed by `close()`)."""
        info = available_adapters()[self.provider].info
        pm = plugin_manager([self.recorder], load_entrypoints=False)
        bus = Bus(self.make_adapter(), hooks=pm.hook, capabilities=info.capabilities)
        self._buses.append(bus)
        return bus

    def names(self, base: str) -> tuple[str, str]:
        """A fresh (topic, subscription) pair."""
        suffix = uuid.uuid4().hex[:8]
        return f"rel-{base}-{suffix}", f"rel-{base}-{suffix}-sub"

    def config_text(self) -> str:
        """A polybus.toml reaching this provider from another process."""
        lines = [f'provider = "{self.provider}"', f"[{self.provider}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in self.settings().items()]
        return "\n".join(lines) + "\n"

    def poison(self, bus: Bus, topic: str, subscription: str) -> str:
        """Publish one undecodable message with the provider's own SDK; what is wrong with it."""
        raise NotImplementedError

    def dead_letters(self, bus: Bus, subscription: str, expected: int) -> list[DeadLetter]:
        """Read and ack the subscription's dead letters (until `expected` or a quiet period)."""
        out: list[DeadLetter] = []
        quiet_until = time.monotonic() + 5.0
        while len(out) < expected or time.monotonic() < quiet_until - 4.0:
            batch = bus.adapter.receive_dead_letters(subscription, 10, 0.5)
            for delivery in batch:
                out.append(DeadLetter(delivery.event, _reason(delivery)))
                delivery.ack()
            if batch:
                quiet_until = time.monotonic() + 5.0
            elif time.monotonic() > quiet_until:
                break
        return out

    def restart(self) -> None:
        """Kill the emulator and start a new, empty one on the same port."""
        raise NotImplementedError

    def close(self) -> None:
        """Close every bus made here."""
        for bus in self._buses:
            bus.close()


def _reason(delivery: Any) -> str:
    reason = getattr(delivery, "reason", None)
    if reason:
        return str(reason)
    return str(delivery.event.get_attributes().get("polybusreason") or "")


class LocalMemoryRig(Rig):
    """The embedded in-memory bus: one adapter shared by every Bus of the test."""

    name = provider = "local"
    short_ack_deadline = 1.0
    can_restart = False  # no broker process to kill
    crosses_processes = False  # the bus lives and dies with its process
    has_raw_path = False  # events are objects in memory: nothing undecodable can get in

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.name = "local-memory"
        self._adapter: Adapter | None = None

    def settings(self) -> dict[str, Any]:
        """Memory mode."""
        return {}

    def make_adapter(self) -> Adapter:
        """The one memory bus of this test."""
        if self._adapter is None:
            self._adapter = super().make_adapter()
        return self._adapter

    def bus(self) -> Bus:
        """A Bus on the shared memory adapter."""
        if self._buses:
            return self._buses[0]
        return super().bus()

    def dead_letters(self, bus: Bus, subscription: str, expected: int) -> list[DeadLetter]:
        """Dead letters with the reasons the memory bus keeps."""
        reasons = bus.adapter.dead_letter_reasons(subscription)  # type: ignore[attr-defined]
        events = [d.event for d in bus.adapter.receive_dead_letters(subscription, 1000, 0.0)]
        return [DeadLetter(e, r) for e, r in zip(events, reasons, strict=False)]


class LocalDurableRig(Rig):
    """The embedded SQLite bus on one file; the poison is a raw row written with sqlite3."""

    provider = "local"
    name = "local-durable"
    short_ack_deadline = 1.0
    can_restart = False

    def settings(self) -> dict[str, Any]:
        """Durable mode on a file of this test."""
        return {"durable": True, "path": str(self.tmp / "bus.db")}

    def poison(self, bus: Bus, topic: str, subscription: str) -> str:
        """A stored event whose time is not a time, inserted around the adapter."""
        db = sqlite3.connect(self.settings()["path"], timeout=10)
        try:
            with db:
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages").fetchone()[0]
                db.execute(
                    "INSERT INTO messages (seq, topic, published_at, body) VALUES (?, ?, ?, ?)",
                    (seq, topic, time.time(), json.dumps(BAD_TIME).encode()),
                )
                db.execute(
                    "INSERT INTO deliveries (sub, seq, visible_at) VALUES (?, ?, 0)",
                    (subscription, seq),
                )
        finally:
            db.close()
        return "time"

    def dead_letters(self, bus: Bus, subscription: str, expected: int) -> list[DeadLetter]:
        """Dead letters with the reasons the durable bus keeps."""
        reasons = bus.adapter.dead_letter_reasons(subscription)  # type: ignore[attr-defined]
        events = [d.event for d in bus.adapter.receive_dead_letters(subscription, 1000, 0.5)]
        return [DeadLetter(e, r) for e, r in zip(events, reasons, strict=False)]


class EmulatorRig(Rig):
    """A cloud provider on its emulator (one per session, restartable on its port)."""

    def __init__(self, tmp: Path, emulators: EmulatorPool) -> None:
        super().__init__(tmp)
        self.name = self.provider
        self.emulators = emulators

    @property
    def emulator(self) -> RunningEmulator:
        """The emulator running now."""
        return self.emulators.get(self.provider)

    def settings(self) -> dict[str, Any]:
        """The emulator's own table."""
        return dict(self.emulator.settings())

    def environment(self) -> dict[str, str]:
        """The emulator's environment."""
        return dict(self.emulator.environment())

    def restart(self) -> None:
        """Stop the emulator and start an empty one on the same port."""
        self.emulators.restart(self.provider)


class GcpRig(EmulatorRig):
    """Pub/Sub on polybus's emulator; the poison comes from the real PublisherClient."""

    provider = "gcp"
    short_ack_deadline = 10.0  # Pub/Sub's minimum

    def poison(self, bus: Bus, topic: str, subscription: str) -> str:
        """A binary-mode JSON message whose data is nested 2,000 deep."""
        from google.cloud import pubsub_v1

        from polybus.adapters.gcp.adapter import make_publisher
        from polybus.adapters.gcp.config import parse_config
        from polybus.adapters.gcp.mapping import topic_path

        config = parse_config(self.settings())
        publisher: pubsub_v1.PublisherClient = make_publisher(config)
        try:
            publisher.publish(
                topic_path(config.project, topic),
                DEEP,
                **{
                    "ce-id": "poison-1",
                    "ce-source": "/raw-publisher",
                    "ce-type": "com.example.poison",
                    "ce-specversion": "1.0",
                    "content-type": "application/json",
                },
            ).result(timeout=30)
        finally:
            publisher.stop()
        return "nest"


class AwsRig(EmulatorRig):
    """EventBridge + SQS on moto; the poison is a PutEvents from boto3 itself."""

    provider = "aws"

    def environment(self) -> dict[str, str]:
        """Dummy credentials and no real AWS configuration (the endpoint is in the settings)."""
        env = {k: v for k, v in self.emulator.environment().items() if k != "AWS_ENDPOINT_URL"}
        return {**env, **AWS_ISOLATION}

    def poison(self, bus: Bus, topic: str, subscription: str) -> str:
        """A CloudEvent whose time is "not-a-time", put on the topic's bus with boto3."""
        import boto3

        from polybus.adapters.aws.mapping import bus_name

        settings = self.settings()
        client = boto3.client(
            "events", region_name=settings["region"], endpoint_url=settings["endpoint_url"]
        )
        answer = client.put_events(
            Entries=[
                {
                    "Source": BAD_TIME["source"],
                    "DetailType": BAD_TIME["type"],
                    "Detail": json.dumps(BAD_TIME),
                    "EventBusName": bus_name("polybus-", topic),
                }
            ]
        )
        assert not answer.get("FailedEntryCount"), answer
        client.close()
        return "time"


class AzureRig(EmulatorRig):
    """Event Grid namespace topics on polybus's emulator; the poison is a raw publish POST."""

    provider = "azure"
    short_ack_deadline = 2.0

    def poison(self, bus: Bus, topic: str, subscription: str) -> str:
        """A CloudEvent whose time is "not-a-time", posted to the topic's publish endpoint."""
        import urllib.request

        from polybus.adapters.azure.mapping import native_name

        settings = self.settings()
        request = urllib.request.Request(
            f"{settings['endpoint']}/topics/{native_name(topic)}:publish?api-version=2024-06-01",
            data=json.dumps([BAD_TIME]).encode(),
            headers={
                "Content-Type": "application/cloudevents-batch+json; charset=utf-8",
                "Authorization": f"SharedAccessKey {settings['key']}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        return "time"


class EmulatorPool:
    """Emulators started on first use, restartable on the same port, stopped at the end."""

    def __init__(self) -> None:
        self._running: dict[str, RunningEmulator] = {}

    def get(self, provider: str) -> RunningEmulator:
        """The provider's emulator, started now if needed."""
        if provider not in self._running:
            spec = available_adapters()[provider].info.emulator
            assert spec is not None
            self._running[provider] = spec.launch("127.0.0.1", 0)
        return self._running[provider]

    def restart(self, provider: str) -> None:
        """Kill the emulator; start an empty one on the same port (same key for azure)."""
        old = self.get(provider)
        port = _port(old.endpoint)
        old.stop()
        if provider == "azure":  # a restarted Event Grid keeps its access key
            from polybus.adapters.azure.emulator.server import start_emulator

            self._running[provider] = _retry_bind(
                lambda: start_emulator("127.0.0.1", port, key=old.key)  # type: ignore[attr-defined]
            )
            return
        spec = available_adapters()[provider].info.emulator
        assert spec is not None
        self._running[provider] = _retry_bind(lambda: spec.launch("127.0.0.1", port))

    def stop(self) -> None:
        """Stop every emulator."""
        for emulator in self._running.values():
            emulator.stop()
        self._running.clear()


def _retry_bind(start: Any) -> Any:
    last: Exception | None = None
    for _ in range(50):  # the old socket may take a moment to be released
        try:
            return start()
        except (OSError, RuntimeError) as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"could not restart the emulator on its port: {last}")


def _port(endpoint: str) -> int:
    parsed = urlparse(endpoint if "://" in endpoint else f"grpc://{endpoint}")
    assert parsed.port is not None
    return parsed.port


def make_rig(name: str, tmp: Path, emulators: EmulatorPool) -> Rig:
    """The rig for a provider id of PROVIDERS."""
    if name == "local-memory":
        return LocalMemoryRig(tmp)
    if name == "local-durable":
        return LocalDurableRig(tmp)
    rigs: dict[str, type[EmulatorRig]] = {"gcp": GcpRig, "aws": AwsRig, "azure": AzureRig}
    return rigs[name](tmp, emulators)


def ids_of(events: Sequence[CloudEvent]) -> list[str]:
    """The events' ids."""
    return [e.get_id() for e in events]
