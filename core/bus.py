"""The service-facing bus: publish events, subscribe handlers, never name a cloud.

`Bus` wraps one adapter. It validates events before the network (the
adapter checks sizes on the bytes it sends), refuses subscriptions asking for
capabilities the adapter does not declare, runs the middleware hooks, evaluates the residual filter the provider
could not, and turns handler outcomes into acks, nacks with backoff and
dead-letters, counting each so the numbers add up:
delivered = acked + retried + dead_lettered + filtered.

Replay: natively where the adapter declares it; otherwise from an event
journal (a `ReplaySource`: `bus.journal`, or a plugin on the bus's hooks such
as polybus.core.consistency.journal.JournalPlugin), by republishing the
topic's events marked ``polybusreplay=<subscription>``; every other
subscription settles such a delivery as filtered (counted and acked).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import pluggy
from cloudevents.core.v1.event import CloudEvent

from polybus.core.capabilities import Capabilities
from polybus.core.contract import (
    DEFAULT_TOPIC,
    Adapter,
    Delivery,
    DeliveryPolicy,
    SubscriptionSpec,
    SupportsReplay,
)
from polybus.core.errors import Problem, UnsupportedError, ValidationError
from polybus.core.events import AttributeView, build_event, validate_attributes, validate_event
from polybus.core.filters.dialects import Filter, compile_filter, parse_filter
from polybus.core.plugins import make_plugin_manager

log = logging.getLogger("polybus")
Handler = Callable[[CloudEvent], Any]
REPLAY_EXTENSION = "polybusreplay"  # names the one subscription a journal replay is for
REPLAY_CHUNK = 100
JOURNAL_HINT = (
    'add a [journal] table to polybus.toml (url = "sqlite:///journal.db") to record '
    "published events and replay from them"
)


@runtime_checkable
class ReplaySource(Protocol):
    """Somewhere published events are kept: what a journal replay republishes."""

    def replay_events(self, topic: str, since: datetime) -> Sequence[CloudEvent]:
        """Events of `topic` published at or after `since`, oldest first."""
        ...

    def close(self) -> None:
        """Release what it holds open (e.g. database connections); it may be used again after."""
        ...


@dataclass
class SubscriptionStats:
    """What happened to the deliveries of one subscription."""

    delivered: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    filtered: int = 0
    last_error: str | None = None

    def settled(self) -> int:
        """Deliveries that reached a final or retry outcome."""
        return self.acked + self.retried + self.dead_lettered + self.filtered


@dataclass
class Subscription:
    """A provisioned subscription with its handler and counters."""

    spec: SubscriptionSpec
    handler: Handler
    residual: Filter | None
    stats: SubscriptionStats = field(default_factory=SubscriptionStats)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._residual_match = compile_filter(self.residual) if self.residual else None

    @property
    def name(self) -> str:
        """The subscription's name."""
        return self.spec.name

    def accepts(self, event: CloudEvent) -> bool:
        """Whether the event is for this subscription: not a replay for another, and the residual filter passes."""
        target = event.get_extension(REPLAY_EXTENSION)
        if target is not None and target != self.spec.name:
            return False
        return self._residual_match is None or self._residual_match(AttributeView(event))


class Bus:
    """Publish and subscribe through one adapter, with policies applied uniformly."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        hooks: pluggy.HookRelay | None = None,
        capabilities: Capabilities | None = None,
        batch_size: int = 100,
        poll_timeout: float = 0.5,
    ) -> None:
        self.adapter = adapter
        self.hooks = (
            hooks if hooks is not None else make_plugin_manager(load_entrypoints=False).hook
        )
        self.capabilities = capabilities
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.subscriptions: dict[str, Subscription] = {}
        self.journal: ReplaySource | None = None
        # Hooks nobody implements are skipped: a pluggy call costs microseconds per event.
        self._active_hooks = {
            name
            for name in (
                "polybus_before_publish",
                "polybus_after_publish",
                "polybus_before_handle",
                "polybus_after_handle",
            )
            if getattr(self.hooks, name).get_hookimpls()
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def provider(self) -> str:
        """The adapter's provider name."""
        return self.adapter.name

    # publishing -------------------------------------------------------------

    def publish(
        self, events: CloudEvent | Sequence[CloudEvent], topic: str = DEFAULT_TOPIC
    ) -> None:
        """Validate, enrich and publish one event or a batch (the adapter checks sizes)."""
        batch = [events] if isinstance(events, CloudEvent) else list(events)
        if not batch:
            return
        size = len(batch)
        batch = [self._prepare(event, topic, size) for event in batch]
        self.adapter.publish(topic, batch)
        if "polybus_after_publish" in self._active_hooks:
            self.hooks.polybus_after_publish(events=batch, topic=topic)

    def _prepare(self, event: CloudEvent, topic: str, batch_size: int = 1) -> CloudEvent:
        if not isinstance(event, CloudEvent):
            raise TypeError(f"expected a CloudEvent, got {type(event).__name__}")
        validate_event(event)
        if "polybus_before_publish" not in self._active_hooks:
            return event
        additions: dict[str, Any] = {}
        for extra in self.hooks.polybus_before_publish(
            event=event, topic=topic, batch_size=batch_size
        ):
            if extra:
                additions.update(extra)
        if not additions:
            return event
        attrs = {**event.get_attributes(), **additions}
        validate_attributes(attrs, event.get_data(), check_data=False)  # data checked above
        return build_event(attrs, event.get_data())

    # subscribing ------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        topic: str = DEFAULT_TOPIC,
        filter: Any = None,
        policy: DeliveryPolicy | None = None,
    ) -> Subscription:
        """Provision a subscription and attach `handler` (filter: a Filter, CESQL or JSON dialect).

        A subscription asking for a capability the adapter does not declare
        (see core.capabilities) raises UnsupportedError before anything is
        provisioned.
        """
        flt = None if filter is None else parse_filter(filter)
        spec = SubscriptionSpec(name, topic, flt, policy or DeliveryPolicy())
        if self.capabilities is not None:
            self.capabilities.check(spec, self.adapter.name)
        residual = self.adapter.provision(spec)
        sub = Subscription(spec, handler, residual)
        self.subscriptions[name] = sub
        return sub

    def replay(
        self,
        name: str,
        since: datetime,
        *,
        topic: str | None = None,
        source: Literal["auto", "native", "journal"] = "auto",
    ) -> int | None:
        """Redeliver to subscription `name` every event of its topic published since `since`.

        Natively when the adapter declares replay (returns None); otherwise
        (or with ``source="journal"``) from the journal: the topic's events
        are republished marked for `name` only, and their number is returned.
        `topic` defaults to the subscription's (when subscribed on this bus).
        """
        native = isinstance(self.adapter, SupportsReplay) and (
            self.capabilities is None or self.capabilities.replay
        )
        if source == "native" or (source == "auto" and native):
            if self.capabilities is not None:
                self.capabilities.check_replay(self.adapter.name)
            if not isinstance(self.adapter, SupportsReplay):
                raise UnsupportedError(
                    f"provider {self.adapter.name!r} cannot replay",
                    [Problem("replay", self.adapter.name, "the adapter has no replay method")],
                )
            self.adapter.replay(name, since)
            return None
        journal = self.journal or self._journal_from_hooks()
        if journal is None:
            raise UnsupportedError(
                f"provider {self.adapter.name!r} cannot replay natively and no event journal is "
                f"configured: {JOURNAL_HINT}",
                [Problem("replay", self.adapter.name, f"no native replay and no journal; {JOURNAL_HINT}")],
            )
        if topic is None:
            sub = self.subscriptions.get(name)
            topic = sub.spec.topic if sub is not None else DEFAULT_TOPIC
        events = [
            build_event({**event.get_attributes(), REPLAY_EXTENSION: name}, event.get_data())
            for event in journal.replay_events(topic, since)
        ]
        for start in range(0, len(events), REPLAY_CHUNK):
            self.adapter.publish(topic, events[start : start + REPLAY_CHUNK])
        return len(events)

    def _journal_from_hooks(self) -> ReplaySource | None:
        for impl in self.hooks.polybus_after_publish.get_hookimpls():
            if isinstance(impl.plugin, ReplaySource):
                return impl.plugin
        return None

    def poll(self, name: str, max_events: int | None = None, timeout: float = 0.0) -> int:
        """Receive one batch for subscription `name` and handle it; returns deliveries handled."""
        sub = self.subscriptions[name]
        deliveries = self.adapter.receive(name, max_events or self.batch_size, timeout)
        for delivery in deliveries:
            self._handle(sub, delivery)
        return len(deliveries)

    def drain(self, idle: float = 0.2, limit: float = 30.0) -> None:
        """Poll every subscription until none has had anything for `idle` seconds (tests, demo)."""
        deadline = time.monotonic() + limit
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            handled = sum(self.poll(name, timeout=0.0) for name in list(self.subscriptions))
            now = time.monotonic()
            if handled:
                quiet_since = now
            elif now - quiet_since >= idle:
                return
            else:
                time.sleep(0.005)

    def before_handle(self, sub: Subscription, event: CloudEvent) -> None:
        """Run the before-handle middleware; a ValidationError means dead-letter at once."""
        if "polybus_before_handle" in self._active_hooks:
            self.hooks.polybus_before_handle(event=event, subscription=sub.name)

    def _handle(self, sub: Subscription, delivery: Delivery) -> None:
        event = delivery.event
        try:
            self.before_handle(sub, event)
        except ValidationError as exc:
            delivery.dead_letter(f"rejected by middleware: {exc}")
            self.record(sub, event, "dead-lettered", exc)
            return
        if not sub.accepts(event):
            delivery.ack()
            self.record(sub, event, "filtered", None)
            return
        try:
            sub.handler(event)
        except BaseException as exc:  # a handler may raise anything, SystemExit included: it is this delivery's failure
            policy = sub.spec.policy
            if delivery.attempt >= policy.max_delivery_attempts:
                delivery.dead_letter(
                    f"handler failed {delivery.attempt} time(s): {type(exc).__name__}: {exc}"
                )
                self.record(sub, event, "dead-lettered", exc)
            else:
                delivery.nack(policy.retry.backoff(delivery.attempt))
                self.record(sub, event, "retried", exc)
            return
        delivery.ack()
        self.record(sub, event, "acked", None)

    def record(
        self, sub: Subscription, event: CloudEvent, outcome: str, error: BaseException | None
    ) -> None:
        """Count one settled delivery ('acked', 'retried', 'dead-lettered' or 'filtered')."""
        with sub.lock:
            stats = sub.stats
            stats.delivered += 1
            if outcome == "acked":
                stats.acked += 1
            elif outcome == "retried":
                stats.retried += 1
            elif outcome == "dead-lettered":
                stats.dead_lettered += 1
            else:
                stats.filtered += 1
            if error is not None:
                stats.last_error = f"{type(error).__name__}: {error}"
        if error is not None:
            log.warning("%s: event %s %s: %s", sub.name, event.get_id(), outcome, error)
        if "polybus_after_handle" in self._active_hooks:
            self.hooks.polybus_after_handle(
                event=event, subscription=sub.name, outcome=outcome, error=error
            )

    # consumer threads -------------------------------------------------------

    def start(self, concurrency: int = 1) -> None:
        """Run `concurrency` consumer threads per subscription until `stop()`."""
        self._stop.clear()
        for name in self.subscriptions:
            for i in range(concurrency):
                thread = threading.Thread(
                    target=self._consume, args=(name,), name=f"polybus-{name}-{i}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _consume(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self.poll(name, timeout=self.poll_timeout)
            except Exception:  # transport errors must not kill the consumer
                log.exception("%s: receive failed; retrying", name)
                self._stop.wait(1.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the consumer threads after their current batch."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def close(self) -> None:
        """Stop consumers, close the adapter and release the journal's connections."""
        self.stop()
        self.adapter.close()
        journal = self.journal or self._journal_from_hooks()
        if journal is not None:
            journal.close()

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
