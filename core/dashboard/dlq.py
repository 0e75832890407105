"""Dead-letter operations shared by `polybus dlq` and the dashboard: list, show, requeue, purge.

Dead letters are read through `Adapter.receive_dead_letters`, which leases
them on some providers (Pub/Sub, SQS, the memory bus) and not on others (the
durable bus). Each operation reads every dead letter once, settles the ones
it acted on and releases the rest (`nack(0)`: they stay dead-lettered).
A requeue publishes first and acks the dead letter only after the publish
succeeded, so a failure leaves the event where it was.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.bus import Bus
from polybus.core.contract import Delivery
from polybus.core.formats import to_dict
from polybus.core.poison import REASON_EXTENSION, UNDECODABLE_TYPE

LIMIT = 1000  # dead letters read per operation at most


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as shown: the event, the attempts it had and why it died (when known)."""

    id: str
    type: str
    source: str
    time: str | None
    attempt: int
    reason: str | None
    event: CloudEvent = field(repr=False, compare=False)

    @property
    def undecodable(self) -> bool:
        """True for the stand-in of a message that was no CloudEvent (it cannot be requeued)."""
        return self.type == UNDECODABLE_TYPE

    def to_json(self, full: bool = False) -> dict[str, Any]:
        """The summary as plain JSON; with `full`, the whole event too."""
        doc: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time,
            "attempt": self.attempt,
            "reason": self.reason,
        }
        if full:
            doc["event"] = event_json(self.event)
        return doc


@dataclass(frozen=True)
class Outcome:
    """What a requeue or purge did: the ids it settled, and the ones it left with why."""

    done: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As plain JSON."""
        return {"done": list(self.done), "skipped": [list(s) for s in self.skipped]}


def event_json(event: CloudEvent) -> dict[str, Any]:
    """The event as structured JSON; binary data (an undecodable message) as base64."""
    try:
        doc = to_dict(event)
    except (TypeError, ValueError):
        doc = {}
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        doc = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
        doc.update(
            {k: v for k, v in event.get_attributes().items() if k not in doc and k != "data"}
        )
        doc["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in doc.items()}


def _reason(delivery: Delivery, fallback: str | None) -> str | None:
    reason = getattr(delivery, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    extension = delivery.event.get_extension(REASON_EXTENSION)
    if isinstance(extension, str) and extension:
        return extension
    return fallback


def _summary(delivery: Delivery, reason: str | None) -> DeadLetter:
    event = delivery.event
    when = event.get_time()
    return DeadLetter(
        id=event.get_id(),
        type=event.get_type(),
        source=event.get_source(),
        time=None if when is None else when.isoformat(),
        attempt=delivery.attempt,
        reason=_reason(delivery, reason),
        event=event,
    )


def read_all(
    bus: Bus, subscription: str, limit: int = LIMIT, timeout: float = 1.0
) -> list[tuple[DeadLetter, Delivery]]:
    """Every dead letter of `subscription` (up to `limit`), each with its unsettled delivery.

    Calls `receive_dead_letters` until a call brings nothing new: leasing
    providers hand out each letter once, the durable bus returns the same rows.
    """
    adapter = bus.adapter
    # The local buses keep reasons beside the rows, in the order they hand them out.
    reasons_of = getattr(adapter, "dead_letter_reasons", None)
    reasons: list[str] = list(reasons_of(subscription)) if callable(reasons_of) else []
    out: list[tuple[DeadLetter, Delivery]] = []
    seen: set[tuple[str, str]] = set()
    wait = timeout
    while len(out) < limit:
        batch = adapter.receive_dead_letters(subscription, limit - len(out), wait)
        fresh = 0
        for delivery in batch:
            key = (delivery.event.get_source(), delivery.event.get_id())
            if key in seen:
                continue  # a provider that does not lease: the same row again
            seen.add(key)
            fresh += 1
            positional = reasons[len(out)] if len(out) < len(reasons) else None
            out.append((_summary(delivery, positional), delivery))
        if not fresh:
            break
        wait = min(timeout, 0.3)
    return out


def release(deliveries: Sequence[Delivery]) -> None:
    """Hand dead letters back unsettled: they stay in the dead-letter target."""
    for delivery in deliveries:
        delivery.nack(0.0)


def list_dead_letters(bus: Bus, subscription: str, limit: int = LIMIT) -> list[DeadLetter]:
    """The dead letters of `subscription`, left where they are."""
    found = read_all(bus, subscription, limit)
    release([d for _, d in found])
    return [letter for letter, _ in found]


def find(bus: Bus, subscription: str, event_id: str) -> DeadLetter | None:
    """The dead letter with `event_id`, or None; nothing is settled."""
    return next((d for d in list_dead_letters(bus, subscription) if d.id == event_id), None)


def requeue(bus: Bus, subscription: str, topic: str, ids: Collection[str] | None = None) -> Outcome:
    """Publish the chosen dead letters (all when `ids` is None) to `topic`, then ack each.

    A dead letter is acked only after its publish returned; a failing publish
    stops the requeue and leaves it (and every one not yet done) dead-lettered.
    Undecodable stand-ins are skipped: their bytes are no event to publish.
    """
    found = read_all(bus, subscription)
    done: list[str] = []
    skipped: list[tuple[str, str]] = []
    pending = list(found)
    try:
        while pending:
            letter, delivery = pending[0]
            if ids is not None and letter.id not in ids:
                release([pending.pop(0)[1]])
                continue
            if letter.undecodable:
                skipped.append((letter.id, "undecodable: no event to publish (purge it)"))
                release([pending.pop(0)[1]])
                continue
            bus.publish(letter.event, topic=topic)
            delivery.ack()
            pending.pop(0)
            done.append(letter.id)
    finally:
        release([d for _, d in pending])
    missing = [] if ids is None else sorted(set(ids) - {letter.id for letter, _ in found})
    skipped += [(i, "no such dead letter") for i in missing]
    return Outcome(tuple(done), tuple(skipped))


def purge(bus: Bus, subscription: str, ids: Collection[str] | None = None) -> Outcome:
    """Ack (delete) the chosen dead letters of `subscription` (all when `ids` is None)."""
    found = read_all(bus, subscription)
    done: list[str] = []
    keep: list[Delivery] = []
    for letter, delivery in found:
        if ids is None or letter.id in ids:
            delivery.ack()
            done.append(letter.id)
        else:
            keep.append(delivery)
    release(keep)
    missing = [] if ids is None else sorted(set(ids) - {letter.id for letter, _ in found})
    return Outcome(tuple(done), tuple((i, "no such dead letter") for i in missing))
