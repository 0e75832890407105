"""`polybus status`: the lag gauge and the alarms of the configured bus, text and JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from polybus.adapters import connect
from polybus.cli.main import cli
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.events import new_event


def _prepare(config: Path, names: tuple[str, str]) -> None:
    """Two subscriptions: the first with 2 waiting events, the second with 1 dead letter."""
    with connect(config) as bus:
        for name in names:
            bus.adapter.provision(SubscriptionSpec(name, name, None, DeliveryPolicy()))
        bus.publish([new_event("com.example.x", "/tests", {"n": i}) for i in range(2)], names[0])
        bus.publish(new_event("com.example.poison", "/tests", {}), names[1])
        deliveries = []
        for _ in range(20):
            deliveries = bus.adapter.receive(names[1], 1, 1.0)
            if deliveries:
                break
        deliveries[0].dead_letter("poison")


def _status(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), "status", *args])
    return result.exit_code, result.output


def test_status_lists_every_local_subscription_with_alarms(
    polybus_config: Callable[[str], Path],
) -> None:
    """On the local bus, status lists every subscription, its figures and breached rules."""
    config = polybus_config("local")
    with config.open("a", encoding="utf-8") as out:
        out.write('[alarms.rules]\ndead = "dead_letters > 0"\nerrors = "error_rate > 0.05"\n')
    _prepare(config, ("orders", "payments"))
    code, output = _status(config, "--json")
    assert code == 0, output
    doc = json.loads(output)
    rows = {row["subscription"]: row for row in doc["subscriptions"]}
    assert doc["provider"] == "local" and sorted(rows) == ["orders", "payments"]
    assert (rows["orders"]["undelivered"], rows["orders"]["dead_letters"]) == (2, 0)
    assert rows["orders"]["alarms"] == []
    assert rows["payments"]["dead_letters"] == 1
    assert [a["rule"] for a in rows["payments"]["alarms"]] == ["dead"]
    code, text = _status(config)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["SUBSCRIPTION", "UNDELIVERED"]
    assert any(line.startswith("payments") and "dead (dead_letters > 0)" in line for line in lines)


def test_status_names_subscriptions_on_a_cloud_and_says_when_it_must(
    polybus_config: Callable[[str], Path],
) -> None:
    """A cloud adapter cannot list subscriptions: status asks for --subscription, then shows them."""
    pytest.importorskip("google.cloud.pubsub_v1")
    config = polybus_config("gcp")
    names = (f"st-{uuid.uuid4().hex[:6]}", f"st-{uuid.uuid4().hex[:6]}")
    _prepare(config, names)
    code, output = _status(config)
    assert code == 2 and "--subscription" in output
    code, output = _status(config, "--json", "--subscription", names[0], "--subscription", names[1])
    assert code == 0, output
    rows = json.loads(output)["subscriptions"]
    assert [(r["undelivered"], r["dead_letters"]) for r in rows] == [(2, 0), (0, 1)]


def test_status_reports_an_unknown_subscription_in_its_row(
    polybus_config: Callable[[str], Path],
) -> None:
    """A name the bus does not know gets an error in its row, not a traceback."""
    config = polybus_config("local")
    code, output = _status(config, "--json", "--subscription", "nope")
    assert code == 0, output
    (row,) = json.loads(output)["subscriptions"]
    assert row["subscription"] == "nope" and "nope" in row["error"]


def test_status_says_unavailable_when_events_wait_without_an_age() -> None:
    """An oldest age the provider cannot give is "unavailable" while events wait, "-" when none do."""
    from polybus.cli.status import render

    row = {"undelivered": 3, "in_flight": 0, "oldest_age": None, "dead_letters": 0, "alarms": []}
    text = render(
        [{"subscription": "waiting", **row}, {"subscription": "empty", **row, "undelivered": 0}]
    )
    waiting, empty = text.splitlines()[1:]
    assert waiting.split()[:4] == ["waiting", "3", "0", "unavailable"]
    assert empty.split()[:4] == ["empty", "0", "0", "-"]
