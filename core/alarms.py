"""Alarms: rules over the lag gauge and the error rate, evaluated by the runtime.

    [alarms]                      # in polybus.toml, beside the provider's table
    interval = 5                  # seconds between evaluations (default 5)
    window = 60                   # seconds the error rate is measured over (default 60)
    topic = "polybus-alarms"      # where fired / cleared CloudEvents go (default)

    [alarms.rules]                # name = "metric op threshold", for every subscription
    dead-letters = "dead_letters > 0"
    stale = "oldest_age > 60"
    errors = "error_rate > 0.05"

Metrics: `undelivered`, `in_flight`, `oldest_age` and `dead_letters` (the
adapter's BacklogStats) and `error_rate` (retried + dead-lettered deliveries
over all deliveries within `window`, from the runtime's counters). A rule
whose metric is unknown (None: the provider does not say, or nothing was
delivered in the window) neither fires nor clears. A firing alarm is logged,
listed by `Monitor.firing()` (the /readyz detail and `polybus status`) and
published once as a ``dev.polybus.alarm.fired`` CloudEvent; when the
condition no longer holds, ``dev.polybus.alarm.cleared`` follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.bus import Bus, Subscription
from polybus.core.config import check_keys, unknown_key_problem
from polybus.core.contract import BacklogStats, SupportsBacklog
from polybus.core.errors import ConfigError, Problem
from polybus.core.events import new_event

log = logging.getLogger("polybus.alarms")

FIRED = "dev.polybus.alarm.fired"
CLEARED = "dev.polybus.alarm.cleared"
DEFAULT_TOPIC = "polybus-alarms"
BACKLOG_METRICS = ("undelivered", "in_flight", "oldest_age", "dead_letters")
METRICS = (*BACKLOG_METRICS, "error_rate")
KEYS: dict[str, type | tuple[type, ...]] = {
    "interval": (int, float),
    "window": (int, float),
    "topic": str,
    "rules": dict,
}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_RULE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    """One alarm rule: `metric op threshold`, applied to every subscription."""

    name: str
    metric: str
    op: str
    threshold: float

    @property
    def expression(self) -> str:
        """The rule as written, normalised (``dead_letters > 0``)."""
        return f"{self.metric} {self.op} {self.threshold:g}"

    def breached(self, value: float | None) -> bool | None:
        """True / False, or None when the value is unknown."""
        return None if value is None else _OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True)
class AlarmSettings:
    """The [alarms] table: rules, how often to evaluate, the error-rate window, the topic."""

    rules: tuple[Rule, ...] = ()
    interval: float = 5.0
    window: float = 60.0
    topic: str = DEFAULT_TOPIC


def parse_alarms(table: Mapping[str, Any]) -> AlarmSettings:
    """Validate an [alarms] table; every problem at once, unknown keys with a did-you-mean."""
    check_keys("alarms", table, KEYS)
    problems: list[Problem] = []
    rules: list[Rule] = []
    for name, text in dict(table.get("rules", {})).items():
        where = f"alarms.rules.{name}"
        match = _RULE.match(text) if isinstance(text, str) else None
        if match is None:
            problems.append(Problem(where, text, "must read 'metric > number' (>, >=, <, <=)"))
            continue
        metric, op, threshold = match.groups()
        if metric not in METRICS:
            problems.append(unknown_key_problem(where, metric, METRICS))
            continue
        rules.append(Rule(str(name), metric, op, float(threshold)))
    for key in ("interval", "window"):
        if key in table and not table[key] > 0:
            problems.append(Problem(f"alarms.{key}", table[key], "must be > 0 seconds"))
    if "topic" in table and not str(table["topic"]).strip():
        problems.append(Problem("alarms.topic", table["topic"], "must be a non-empty name"))
    if problems:
        raise ConfigError("invalid [alarms] settings", problems)
    return AlarmSettings(
        tuple(rules),
        float(table.get("interval", 5.0)),
        float(table.get("window", 60.0)),
        str(table.get("topic", DEFAULT_TOPIC)),
    )


@dataclass(frozen=True)
class Alarm:
    """A rule breached by one subscription, since when, with the value that breached it."""

    rule: str
    subscription: str
    expression: str
    value: float
    since: datetime

    def to_json(self) -> dict[str, Any]:
        """The alarm as JSON (the CloudEvents' data, `polybus status --json`)."""
        return {
            "rule": self.rule,
            "subscription": self.subscription,
            "expression": self.expression,
            "value": self.value,
            "since": self.since.isoformat(),
        }

    def describe(self) -> str:
        """One line: ``dead-letters on orders: dead_letters > 0 (now 1)``."""
        return f"{self.rule} on {self.subscription}: {self.expression} (now {self.value:g})"


def figures(stats: BacklogStats | None, error_rate: float | None) -> dict[str, float | None]:
    """The values a rule can read: the backlog figures and the error rate."""
    values: dict[str, float | None] = dict.fromkeys(BACKLOG_METRICS)
    if stats is not None:
        values.update({name: getattr(stats, name) for name in BACKLOG_METRICS})
    values["error_rate"] = error_rate
    return values


def breaches(
    rules: Sequence[Rule], subscription: str, values: Mapping[str, float | None]
) -> dict[str, tuple[Rule, float] | None]:
    """Per rule: (rule, value) when breached, None when it holds; unknown values are left out."""
    out: dict[str, tuple[Rule, float] | None] = {}
    for rule in rules:
        value = values.get(rule.metric)
        verdict = rule.breached(value)
        if verdict is not None and value is not None:
            out[rule.name] = (rule, value) if verdict else None
    return out


@dataclass
class _Rate:
    """(time, delivered, failed) samples of one subscription's counters."""

    samples: deque[tuple[float, int, int]] = field(default_factory=deque)

    def add(self, now: float, delivered: int, failed: int, window: float) -> float | None:
        self.samples.append((now, delivered, failed))
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        _, first_delivered, first_failed = self.samples[0]
        handled = delivered - first_delivered
        return None if handled <= 0 else (failed - first_failed) / handled


class Monitor:
    """Reads the lag gauge of the runtime's subscriptions and evaluates the alarm rules.

    `check()` is synchronous (it calls the adapter); `run()` calls it every
    `settings.interval` seconds off the event loop until `stop()`. The latest
    backlog figures feed /metrics; the firing alarms feed /readyz and status.
    """

    def __init__(
        self,
        bus: Bus,
        subscriptions: Callable[[], Sequence[Subscription]],
        settings: AlarmSettings,
        app: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.subscriptions = subscriptions
        self.settings = settings
        self.app = app
        self.clock = clock
        self.backlog: dict[str, BacklogStats] = {}
        self._firing: dict[tuple[str, str], Alarm] = {}
        self._rates: dict[str, _Rate] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # check() runs in a thread; firing() on the loop

    def firing(self) -> list[Alarm]:
        """The alarms firing now, oldest first."""
        with self._lock:
            alarms = list(self._firing.values())
        return sorted(alarms, key=lambda alarm: alarm.since)

    def detail(self) -> str:
        """One line per firing alarm (the /readyz detail); empty when none fires."""
        return "".join(f"alarm firing: {alarm.describe()}\n" for alarm in self.firing())

    def check(self) -> tuple[list[Alarm], list[Alarm]]:
        """Read every subscription's figures once; return the alarms (fired, cleared) now."""
        now = self.clock()
        fired: list[Alarm] = []
        cleared: list[Alarm] = []
        latest: dict[str, BacklogStats] = {}
        verdicts: list[tuple[str, dict[str, tuple[Rule, float] | None]]] = []
        for sub in self.subscriptions():
            stats = self._read_backlog(sub.name)
            if stats is not None:
                latest[sub.name] = stats
            with sub.lock:
                delivered = sub.stats.delivered - sub.stats.filtered
                failed = sub.stats.retried + sub.stats.dead_lettered
            rate = self._rates.setdefault(sub.name, _Rate()).add(
                now, delivered, failed, self.settings.window
            )
            values = figures(stats, rate)
            verdicts.append((sub.name, breaches(self.settings.rules, sub.name, values)))
        self.backlog = latest  # replaced whole, before the alarms: /metrics reads both
        with self._lock:
            for subscription, found in verdicts:
                for name, verdict in found.items():
                    key = (name, subscription)
                    if verdict is not None and key not in self._firing:
                        rule, value = verdict
                        alarm = Alarm(name, subscription, rule.expression, value, datetime.now(UTC))
                        self._firing[key] = alarm
                        fired.append(alarm)
                    elif verdict is None and key in self._firing:
                        cleared.append(self._firing.pop(key))
        for alarm in fired:
            log.warning("%s: alarm fired: %s", self.app, alarm.describe())
        for alarm in cleared:
            log.warning("%s: alarm cleared: %s", self.app, alarm.describe())
        events = [self.event(FIRED, a) for a in fired] + [self.event(CLEARED, a) for a in cleared]
        if events:
            try:
                self.bus.publish(events, self.settings.topic)
            except Exception:  # an alarm that cannot be published is still logged and listed
                log.exception("%s: cannot publish %d alarm event(s)", self.app, len(events))
        return fired, cleared

    def event(self, kind: str, alarm: Alarm) -> CloudEvent:
        """The CloudEvent announcing `alarm` (fired or cleared)."""
        return new_event(kind, f"/polybus/{self.app}", alarm.to_json(), subject=alarm.subscription)

    def _read_backlog(self, name: str) -> BacklogStats | None:
        adapter = self.bus.adapter
        if not isinstance(adapter, SupportsBacklog):
            return None
        try:
            stats = adapter.backlog_stats(name)
        except Exception as exc:  # the provider may not say (UnsupportedError) or be away
            log.debug("%s: no backlog for %s: %s", self.app, name, exc)
            return None
        return stats

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled (one failed check is logged)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.check)
            except Exception:
                log.exception("%s: alarm evaluation failed", self.app)
            await asyncio.sleep(self.settings.interval)

    def start(self) -> None:
        """Run `run()` as a task on the current loop."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Cancel the task and wait for it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
