"""`polybus dlq`: list, show, requeue and purge real dead letters on the durable bus and Pub/Sub."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.local.durable import DurableBus
from polybus.cli.main import cli
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy, RetryPolicy, SubscriptionSpec
from polybus.core.dashboard import dlq
from polybus.core.errors import PublishError
from polybus.core.events import new_event
from polybus.core.poison import UNDECODABLE_TYPE
from tests.contract.helpers import receive_n
from tests.fixtures.gcp import PROJECT
from tests.gcp.helpers import PubSubClients

FAST = DeliveryPolicy(retry=RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0))


def _dead_letter(adapter: Any, sub: str, topic: str, n: int) -> list[str]:
    """Provision `sub`, publish `n` events and dead-letter each with a numbered reason."""
    adapter.provision(SubscriptionSpec(sub, topic, None, FAST))
    events = [new_event("com.example.order", "/shop", {"n": i}) for i in range(n)]
    adapter.publish(topic, events)
    got = receive_n(adapter, sub, n)
    for delivery in sorted(got, key=lambda d: d.event.get_data()["n"]):
        delivery.dead_letter(f"bad order {delivery.event.get_data()['n']}")
    return [e.get_id() for e in events]


@pytest.fixture
def durable_config(tmp_path: Path) -> tuple[Path, Path]:
    """A polybus.toml selecting the durable local bus, and its database path."""
    db = tmp_path / "bus.db"
    config = tmp_path / "polybus.toml"
    config.write_text(f'provider = "local"\n[local]\ndurable = true\npath = "{db}"\n')
    return config, db


def test_cli_lists_shows_requeues_and_purges_on_the_durable_bus(
    durable_config: tuple[Path, Path],
) -> None:
    """Each dlq command works end to end against real dead letters in a SQLite file."""
    config, db = durable_config
    adapter = DurableBus(db)
    ids = _dead_letter(adapter, "orders", "shop", 3)
    adapter.close()
    runner = CliRunner()
    base = ["--config", str(config), "dlq"]

    listed = runner.invoke(cli, [*base, "list", "-s", "orders", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["id"] for r in rows] == ids
    assert [r["reason"] for r in rows] == ["bad order 0", "bad order 1", "bad order 2"]
    assert {r["type"] for r in rows} == {"com.example.order"}

    shown = runner.invoke(cli, [*base, "show", ids[1], "-s", "orders"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["event"]["data"] == {"n": 1}
    missing = runner.invoke(cli, [*base, "show", "nope", "-s", "orders"])
    assert missing.exit_code == 1 and "no dead letter 'nope'" in missing.output

    requeued = runner.invoke(
        cli, [*base, "requeue", "-s", "orders", "--topic", "shop", "--id", ids[0]]
    )
    assert requeued.exit_code == 0, requeued.output
    assert "requeued 1 dead letter(s) to shop" in requeued.output
    adapter = DurableBus(db)
    try:
        [again] = receive_n(adapter, "orders", 1)
        assert again.event.get_id() == ids[0]
        again.ack()
    finally:
        adapter.close()

    refused = runner.invoke(cli, [*base, "purge", "-s", "orders"], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    after = json.loads(runner.invoke(cli, [*base, "list", "-s", "orders", "--json"]).output)
    assert [r["id"] for r in after] == ids[1:]

    purged = runner.invoke(cli, [*base, "purge", "-s", "orders", "--yes"])
    assert purged.exit_code == 0 and "purged 2 dead letter(s)" in purged.output
    empty = runner.invoke(cli, [*base, "list", "-s", "orders"])
    assert "no dead letters in orders" in empty.output


def test_requeue_needs_a_choice(durable_config: tuple[Path, Path]) -> None:
    """requeue without --id or --all (or with both) is a usage error, and settles nothing."""
    config, _ = durable_config
    result = CliRunner().invoke(cli, ["--config", str(config), "dlq", "requeue", "-s", "x"])
    assert result.exit_code == 2 and "--all" in result.output


class _RefusingBus(DurableBus):
    """A durable bus whose publish fails, as a provider outage would."""

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Refuse every publish."""
        raise PublishError({e.get_id(): f"{topic} is unreachable" for e in events})


def test_a_failed_requeue_keeps_every_dead_letter(tmp_path: Path) -> None:
    """When the publish fails the dead letter is not acked: nothing is lost."""
    adapter = _RefusingBus(tmp_path / "bus.db")
    try:
        adapter.provision(SubscriptionSpec("orders", "shop", None, FAST))
        DurableBus.publish(adapter, "shop", [new_event("com.example.order", "/shop", {"n": 0})])
        [delivery] = receive_n(adapter, "orders", 1)
        delivery.dead_letter("bad")
        bus = Bus(adapter)
        with pytest.raises(PublishError):
            dlq.requeue(bus, "orders", "shop")
        assert [d.id for d in dlq.list_dead_letters(bus, "orders")] == [delivery.event.get_id()]
    finally:
        adapter.close()


def _wait_for(bus: Bus, sub: str, n: int, timeout: float = 10.0) -> list[dlq.DeadLetter]:
    deadline = time.monotonic() + timeout
    letters = dlq.list_dead_letters(bus, sub)
    while len(letters) < n and time.monotonic() < deadline:
        letters = dlq.list_dead_letters(bus, sub)
    return letters


def test_pubsub_dead_letters_with_reasons_requeue_and_purge(
    gcp_adapter_factory: Callable[[], Any], pubsub: PubSubClients
) -> None:
    """On the Pub/Sub emulator: reasons are read, events requeued, the undecodable one purged."""
    adapter = gcp_adapter_factory()
    suffix = uuid.uuid4().hex[:8]
    topic, sub = f"topic-{suffix}", f"sub-{suffix}"
    ids = _dead_letter(adapter, sub, topic, 2)
    pubsub.publisher.publish(f"projects/{PROJECT}/topics/{topic}", b"garbage").result()
    assert receive_n(adapter, sub, 1, timeout=2.0) == []  # the garbage goes straight to the DLQ
    bus = Bus(adapter)

    letters = _wait_for(bus, sub, 3)
    by_id = {d.id: d for d in letters}
    assert {by_id[i].reason for i in ids} == {"bad order 0", "bad order 1"}
    [poison] = [d for d in letters if d.undecodable]
    assert poison.type == UNDECODABLE_TYPE and (poison.reason or "").startswith("not a CloudEvent")
    assert dlq.event_json(poison.event)["data_base64"] == "Z2FyYmFnZQ=="

    outcome = dlq.requeue(bus, sub, topic)
    assert sorted(outcome.done) == sorted(ids)
    assert [s[0] for s in outcome.skipped] == [poison.id]
    back = receive_n(adapter, sub, 2)
    assert sorted(d.event.get_id() for d in back) == sorted(ids)
    for delivery in back:
        delivery.ack()

    assert [d.id for d in _wait_for(bus, sub, 1)] == [poison.id]
    assert dlq.purge(bus, sub).done == (poison.id,)
    assert dlq.list_dead_letters(bus, sub) == []
