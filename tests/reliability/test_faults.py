"""Fault injection through polybus.App and the runtime, the same tests on every provider.

Every test checks that the counts add up (delivered = acked + retried +
dead_lettered + filtered) and that every published id is accounted for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cloudevents.core.v1.event import CloudEvent

from polybus import App
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.events import new_event
from polybus.core.runtime import RuntimeSettings
from tests.reliability.rigs import Rig, ids_of

REPO = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)
SETTINGS = RuntimeSettings(poll_timeout=0.2, grace=10.0, close_timeout=10.0)


def _events(kind: str, count: int) -> list[CloudEvent]:
    return [new_event(f"com.example.{kind}", "/reliability", {"n": i}) for i in range(count)]


async def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def _run(app: App, bus: Bus, scenario: Callable[[], Awaitable[None]]) -> None:
    """Start `app` on `bus`, run the scenario, stop the app (the bus stays the rig's)."""

    async def main() -> None:
        await app.start(bus=bus)
        try:
            await scenario()
        finally:
            await app.stop()

    asyncio.run(main())


def _check_counts(bus: Bus, rig: Rig, sub: str, published: list[str]) -> Counter[str]:
    """The stats add up, the recorder agrees, and every id ended acked or dead-lettered."""
    stats = bus.subscriptions[sub].stats
    assert stats.delivered == stats.acked + stats.retried + stats.dead_lettered + stats.filtered
    outcomes = rig.recorder.of(sub)
    assert len(outcomes) == stats.delivered
    final = Counter(o.event_id for o in outcomes if o.outcome in ("acked", "dead-lettered"))
    missing = [i for i in published if final[i] == 0]
    assert not missing, f"{len(missing)} published id(s) never settled: {missing[:5]}"
    return final


def test_handlers_slower_than_the_lease_run_once(rig: Rig) -> None:
    """Handlers outliving the ack deadline keep their lease: each event is handled exactly once."""
    bus = rig.bus()
    topic, sub = rig.names("slow")
    deadline = rig.short_ack_deadline
    work = deadline + max(1.0, deadline / 2)
    policy = DeliveryPolicy(ack_deadline=deadline, retry=FAST)
    calls: Counter[str] = Counter()
    renewals: list[int] = []
    app = App("slow", settings=SETTINGS)
    events = _events("slow", 4)

    # Free slots beyond the events: a copy redelivered after a lost lease is taken at once.
    @app.subscriber(sub, topic=topic, policy=policy, concurrency=len(events) + 2)
    async def handle(event: CloudEvent) -> None:
        calls[event.get_id()] += 1
        await asyncio.sleep(work)

    async def scenario() -> None:
        await app.publish(events, topic)
        await _wait_until(
            lambda: len(rig.recorder.of(sub, "acked")) >= len(events), work * 4 + 20, "acks"
        )
        await asyncio.sleep(1.0)  # a late redelivery would show up now
        assert app.worker is not None
        renewals.append(sum(r.lease_renewals for _, r in app.worker.stats()))

    _run(app, bus, scenario)
    assert calls == Counter(ids_of(events))
    assert app.worker is None
    assert renewals and renewals[0] > 0, "no lease was renewed"
    final = _check_counts(bus, rig, sub, ids_of(events))
    assert all(final[i] == 1 for i in ids_of(events))
    assert not rig.recorder.of(sub, "retried")


def test_a_hung_handler_is_released_and_the_others_keep_flowing(rig: Rig) -> None:
    """One handler hangs: the rest are handled meanwhile; it is nacked after max handling time."""
    bus = rig.bus()
    topic, sub = rig.names("hung")
    hung = new_event("com.example.hang", "/reliability")
    others = _events("flow", 10)
    release = threading.Event()
    # 8 s: the ten others need one free slot for well under that, even on a loaded machine
    app = App("hung", settings=RuntimeSettings(poll_timeout=0.2, grace=2.0, max_handling_time=8.0))
    policy = DeliveryPolicy(ack_deadline=max(2.0, rig.short_ack_deadline), retry=FAST)

    @app.subscriber(sub, topic=topic, policy=policy, concurrency=2)
    def handle(event: CloudEvent, ctx: object) -> None:
        if event.get_id() == hung.get_id() and getattr(ctx, "attempt", 1) == 1:
            release.wait(60)  # hangs until the test ends

    async def scenario() -> None:
        await app.publish([hung], topic)
        await _wait_until(lambda: app.worker is not None and app.worker.in_flight > 0, 20, "hang")
        await app.publish(others, topic)
        await _wait_until(
            lambda: len(rig.recorder.of(sub, "acked")) >= len(others) + 1, 40, "all acked"
        )

    try:
        _run(app, bus, scenario)
    finally:
        release.set()
    outcomes = rig.recorder.of(sub)
    first_hung = next(o for o in outcomes if o.event_id == hung.get_id())
    assert first_hung.outcome == "retried" and "longer than 8s" in str(first_hung.error)
    flowed = [o for o in outcomes if o.event_id != hung.get_id() and o.at < first_hung.at]
    assert len(flowed) == len(others), "the others waited for the hung handler"
    final = _check_counts(bus, rig, sub, [hung.get_id(), *ids_of(others)])
    assert final[hung.get_id()] == 1


def test_base_exceptions_from_handlers_lose_nothing(rig: Rig) -> None:
    """SystemExit and KeyboardInterrupt from handlers are failures: retried, nothing lost."""
    bus = rig.bus()
    topic, sub = rig.names("base")
    events = _events("base", 20)
    app = App("base", settings=SETTINGS)
    raised: Counter[str] = Counter()

    @app.subscriber(sub, topic=topic, policy=DeliveryPolicy(retry=FAST), concurrency=4)
    def handle(event: CloudEvent, ctx: object) -> None:
        if getattr(ctx, "attempt", 1) == 1:
            raised[event.get_id()] += 1
            n = event.get_data()["n"]  # type: ignore[index]
            raise SystemExit(3) if n % 2 else KeyboardInterrupt

    async def scenario() -> None:
        await app.publish(events, topic)
        await _wait_until(
            lambda: len(rig.recorder.of(sub, "acked")) >= len(events), 60, "every event acked"
        )

    _run(app, bus, scenario)
    final = _check_counts(bus, rig, sub, ids_of(events))
    assert all(final[i] == 1 for i in ids_of(events))
    retried = rig.recorder.of(sub, "retried")
    assert {o.error.split(":")[0] for o in retried if o.error} == {
        "SystemExit",
        "KeyboardInterrupt",
    }
    assert sum(raised.values()) == len(retried)


def test_one_poison_among_fifty_is_dead_lettered_alone(raw_rig: Rig) -> None:
    """50 good events and 1 undecodable message from the raw SDK: 50 handled, 1 dead-lettered."""
    rig = raw_rig
    assert rig.has_raw_path
    bus = rig.bus()
    topic, sub = rig.names("poison")
    events = _events("good", 50)
    handled: Counter[str] = Counter()
    app = App("poison", settings=SETTINGS)

    @app.subscriber(sub, topic=topic, policy=DeliveryPolicy(retry=FAST), concurrency=4)
    async def handle(event: CloudEvent) -> None:
        handled[event.get_id()] += 1

    async def scenario() -> None:
        await app.publish(events[:25], topic)
        await asyncio.get_running_loop().run_in_executor(None, rig.poison, bus, topic, sub)
        await app.publish(events[25:], topic)
        await _wait_until(lambda: len(handled) >= len(events), 60, "50 good events")

    _run(app, bus, scenario)
    assert handled == Counter(ids_of(events))
    final = _check_counts(bus, rig, sub, ids_of(events))
    assert all(final[i] == 1 for i in ids_of(events))
    assert not rig.recorder.of(sub, "dead-lettered")
    # App.stop() closed the bus it was given (see the report): read through a fresh one,
    # which provisions the subscription again (idempotent) so it knows its dead-letter target.
    fresh = rig.bus()
    fresh.adapter.provision(bus.subscriptions[sub].spec)
    dead = rig.dead_letters(fresh, sub, expected=1)
    assert len(dead) == 1, [(d.event.get_type(), d.reason) for d in dead]
    assert dead[0].reason
    assert dead[0].event.get_id() not in ids_of(events)


def test_traffic_resumes_after_the_emulator_restarts(restartable_rig: Rig) -> None:
    """Kill the emulator, start an empty one on its port: consuming resumes by itself within 10 s."""
    rig = restartable_rig
    assert rig.can_restart
    bus = rig.bus()
    topic, sub = rig.names("restart")
    before, after = _events("before", 5), _events("after", 5)
    probes: list[str] = []
    app = App("restart", settings=SETTINGS)
    policy = DeliveryPolicy(ack_deadline=max(2.0, rig.short_ack_deadline), retry=FAST)

    @app.subscriber(sub, topic=topic, policy=policy, concurrency=2)
    async def handle(event: CloudEvent) -> None:
        pass

    def acked() -> set[str]:
        return {o.event_id for o in rig.recorder.of(sub, "acked")}

    async def probe_until_handled() -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            probe = new_event("com.example.probe", "/reliability")
            try:
                await app.publish(probe, topic)
                probes.append(probe.get_id())
            except Exception:  # the publisher is reconnecting: try again
                pass
            for _ in range(5):
                if acked() & set(probes):
                    return
                await asyncio.sleep(0.1)
        raise AssertionError(f"no traffic within 10 s of the restart ({len(probes)} probes)")

    async def scenario() -> None:
        await app.publish(before, topic)
        await _wait_until(lambda: set(ids_of(before)) <= acked(), 30, "events before the restart")
        await asyncio.get_running_loop().run_in_executor(None, rig.restart)
        await probe_until_handled()
        await app.publish(after, topic)
        await _wait_until(lambda: set(ids_of(after)) <= acked(), 30, "events after the restart")

    _run(app, bus, scenario)
    first_handled = min(i for i, p in enumerate(probes) if p in acked())
    lost = [p for p in probes if p not in acked()]
    # Only probes sent before the subscription was back can be lost: the restart emptied state.
    assert all(probes.index(p) < first_handled for p in lost)
    final = _check_counts(bus, rig, sub, [*ids_of(before), *ids_of(after)])
    assert all(final[i] == 1 for i in [*ids_of(before), *ids_of(after)])


@pytest.mark.slow
def test_sigterm_under_load_loses_and_duplicates_nothing(shared_rig: Rig, tmp_path: Path) -> None:
    """SIGTERM to `polybus run` mid-load: in-flight handlers finish, the rest go to the next one."""
    rig = shared_rig
    assert rig.crosses_processes
    bus = rig.bus()
    topic, sub = rig.names("sigterm")
    out = tmp_path / "handled.txt"
    config = tmp_path / "polybus.toml"
    config.write_text(rig.config_text(), encoding="utf-8")
    env = {
        **os.environ,
        **rig.environment(),
        "PYTHONPATH": str(REPO),
        "POLYBUS_REL_TOPIC": topic,
        "POLYBUS_REL_SUB": sub,
        "POLYBUS_REL_OUT": str(out),
        "POLYBUS_REL_SLEEP": "0.3",
        "POLYBUS_REL_ACK": str(max(10.0, rig.short_ack_deadline)),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    events = _events("load", 60)

    def start() -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "polybus", "--config", str(config)]
        argv += ["run", "tests.reliability.service:app", "--log-level", "warning"]
        return subprocess.Popen(argv, cwd=REPO, env=env, stderr=subprocess.PIPE)

    def finished() -> list[str]:
        return out.read_text(encoding="utf-8").split() if out.exists() else []

    def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    # The subscription exists before anything is published: provision it from here.
    first = start()
    try:
        probe = new_event("com.example.ready", "/reliability")

        def ready() -> bool:
            bus.publish(probe, topic)
            time.sleep(0.5)
            return probe.get_id() in finished()

        wait_for(ready, 60, "the first worker to consume")
        bus.publish(events, topic)
        wait_for(lambda: len(finished()) >= 12, 60, "a dozen events handled")
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr.decode()[-2000:]
        stopped_at = len(set(finished()) & set(ids_of(events)))
        second = start()
        try:
            wait_for(lambda: set(ids_of(events)) <= set(finished()), 90, "every event handled")
            time.sleep(1.0)  # a duplicate would arrive now
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=60)
        assert second.returncode == 0
    finally:
        if first.poll() is None:
            first.kill()
    counts = Counter(finished())
    lost = [i for i in ids_of(events) if counts[i] == 0]
    duplicated = {i: n for i, n in counts.items() if n > 1}
    assert not lost and not duplicated, f"lost {lost}, duplicated {duplicated}"
    assert 0 < stopped_at < len(events)  # the first worker stopped mid-load
