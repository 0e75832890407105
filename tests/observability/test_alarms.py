"""Alarm rules: parsing, firing and clearing, the CloudEvents, /metrics and the App."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from polybus.adapters.local.memory import MemoryBus
from polybus.app import App
from polybus.core.alarms import CLEARED, FIRED, AlarmSettings, Monitor, Rule, parse_alarms
from polybus.core.bus import Bus, Subscription
from polybus.core.config import parse_config
from polybus.core.contract import BacklogStats
from polybus.core.errors import ConfigError
from polybus.core.events import new_event
from polybus.core.runtime.metrics import RuntimeStats, prometheus_text

DEAD = AlarmSettings((Rule("dead-letters", "dead_letters", ">", 0.0),))


def _noop(event: object) -> None:
    """A handler the tests never run (they receive by hand)."""


def _alarm_events(bus: Bus) -> list[tuple[str, dict[str, object]]]:
    got = bus.adapter.receive("alarm-watch", 10, 0.0)
    for delivery in got:
        delivery.ack()
    return [(d.event.get_type(), d.event.get_data()) for d in got]  # type: ignore[misc]


def _dead_letter_one(bus: Bus, topic: str, name: str) -> None:
    bus.publish(new_event("com.example.poison", "/tests", {}), topic)
    (delivery,) = bus.adapter.receive(name, 1, 1.0)
    delivery.dead_letter("poison")


def test_parse_reads_rules_and_defaults() -> None:
    """A table of named rules parses into Rules; interval, window and topic default."""
    settings = parse_alarms({"rules": {"stale": "oldest_age > 60", "errors": "error_rate >= 0.05"}})
    assert settings.rules == (
        Rule("stale", "oldest_age", ">", 60.0),
        Rule("errors", "error_rate", ">=", 0.05),
    )
    assert (settings.interval, settings.window, settings.topic) == (5.0, 60.0, "polybus-alarms")


def test_parse_rejects_unknown_keys_and_metrics_with_did_you_mean() -> None:
    """A misspelt key or metric is a ConfigError naming the close match."""
    with pytest.raises(ConfigError, match="did you mean 'interval'"):
        parse_alarms({"intervall": 5})
    with pytest.raises(ConfigError, match="did you mean 'dead_letters'"):
        parse_alarms({"rules": {"d": "dead_leters > 0"}})
    with pytest.raises(ConfigError, match="metric > number"):
        parse_alarms({"rules": {"d": "dead_letters is big"}})


def test_an_alarm_fires_and_clears_with_cloudevents() -> None:
    """A dead letter fires the rule once (fired event); draining it clears it (cleared event)."""
    bus = Bus(MemoryBus())
    sub = bus.subscribe("orders", _noop, topic="orders")
    bus.subscribe("alarm-watch", _noop, topic="polybus-alarms")
    monitor = Monitor(bus, lambda: [sub], DEAD, "shop")
    assert monitor.check() == ([], [])
    _dead_letter_one(bus, "orders", "orders")
    fired, cleared = monitor.check()
    assert [(a.rule, a.subscription, a.value) for a in fired] == [("dead-letters", "orders", 1)]
    assert cleared == []
    assert monitor.check() == ([], [])  # still firing: announced once
    assert "alarm firing: dead-letters on orders: dead_letters > 0 (now 1)" in monitor.detail()
    for delivery in bus.adapter.receive_dead_letters("orders", 10, 0.0):
        delivery.ack()
    fired, cleared = monitor.check()
    assert (fired, [a.rule for a in cleared]) == ([], ["dead-letters"])
    assert monitor.firing() == [] and monitor.detail() == ""
    events = _alarm_events(bus)
    assert [kind for kind, _ in events] == [FIRED, CLEARED]
    assert events[0][1]["subscription"] == "orders"


def test_error_rate_is_measured_over_the_window() -> None:
    """error_rate counts retried + dead-lettered over delivered within the window, then clears."""
    bus = Bus(MemoryBus())
    sub = bus.subscribe("orders", _noop, topic="orders")
    now = [0.0]
    settings = AlarmSettings((Rule("errors", "error_rate", ">", 0.05),), window=60.0)
    monitor = Monitor(bus, lambda: [sub], settings, "shop", clock=lambda: now[0])
    event = new_event("com.example.x", "/tests", {})
    assert monitor.check() == ([], [])  # nothing delivered: unknown, neither fires nor clears
    for outcome in ("acked", "acked", "retried"):
        bus.record(sub, event, outcome, None)
    now[0] = 10.0
    fired, _ = monitor.check()
    assert [round(a.value, 3) for a in fired] == [0.333]
    for _ in range(40):
        bus.record(sub, event, "acked", None)
    now[0] = 100.0  # the retry left the window: 40 acked since the last sample
    _, cleared = monitor.check()
    assert [a.rule for a in cleared] == ["errors"]


def test_metrics_expose_the_lag_gauge_latency_and_alarms() -> None:
    """The Prometheus text carries backlog gauges, the end-to-end histogram and firing alarms."""
    bus = Bus(MemoryBus())
    sub: Subscription = bus.subscribe("orders", _noop, topic="orders")
    runtime = RuntimeStats()
    event = new_event("com.example.x", "/tests", {})
    runtime.observe_latency(event, now=event.get_time().timestamp() + 0.3)
    text = prometheus_text(
        [(sub, runtime)],
        "shop",
        [BacklogStats("orders", 4, 1, 12.5, 2)],
        [("dead-letters", "orders")],
    )
    assert 'polybus_backlog_undelivered{app="shop",subscription="orders"} 4' in text
    assert 'polybus_backlog_oldest_age_seconds{app="shop",subscription="orders"} 12.5' in text
    assert 'polybus_backlog_dead_letters{app="shop",subscription="orders"} 2' in text
    assert (
        'polybus_end_to_end_latency_seconds_bucket{app="shop",subscription="orders",le="0.5"} 1'
        in text
    )
    assert (
        'polybus_end_to_end_latency_seconds_bucket{app="shop",subscription="orders",le="0.25"} 0'
        in text
    )
    assert 'polybus_alarm_firing{app="shop",alarm="dead-letters",subscription="orders"} 1' in text


def test_a_running_app_fires_and_clears_and_shows_it(tmp_path: Path) -> None:
    """An App with [alarms] evaluates them: fired in detail and /metrics, cleared after."""
    config = parse_config(
        {"provider": "local", "alarms": {"interval": 0.05, "rules": {"dl": "dead_letters > 0"}}}
    )
    bus = Bus(MemoryBus())
    app = App("shop", config=config)

    @app.subscriber("orders", topic="orders")
    def handle(event: object) -> None:
        raise ValueError("poison")

    async def scenario() -> tuple[str, str, str]:
        await app.start(bus=bus)
        try:
            bus.publish(new_event("com.example.poison", "/tests", {}), "orders")
            fired = await _until(app, firing=True)
            metrics = app.metrics()
            for delivery in bus.adapter.receive_dead_letters("orders", 10, 0.0):
                delivery.ack()
            await _until(app, firing=False)
            return fired, metrics, app.alarm_detail()
        finally:
            await app.stop()

    app.with_settings(instant_retries=True)
    fired, metrics, after = asyncio.run(scenario())
    assert fired.startswith("alarm firing: dl on orders")
    assert 'polybus_backlog_dead_letters{app="shop",subscription="orders"} 1' in metrics
    assert after == ""
    bus.close()


async def _until(app: App, firing: bool) -> str:
    """Wait (up to 10 s) until the app has / has no firing alarm; return its detail."""
    deadline = time.monotonic() + 10.0
    while (app.alarm_detail() != "") != firing and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return app.alarm_detail()
