"""How portable topic and subscription names become AWS resource names.

topic "orders"            -> event bus   "<bus_prefix>orders"        (default "polybus-orders")
                          -> archive     "<bus name>-archive"
subscription "billing"    -> rule        "<queue_prefix>billing"     (on the topic's bus)
                          -> SQS queue   "<queue_prefix>billing"
dead-letter "billing-dlq" -> SQS queue   "<queue_prefix>billing-dlq"
ordered subscriptions use FIFO queues: "<queue_prefix>billing.fifo", "...-dlq.fifo"

AWS allows fewer characters and shorter names than polybus does (bus 256,
rule and replay 64, queue 80, archive 48 characters). A name that fits is used
as is; otherwise characters AWS refuses become "-" and, when anything changed
or the name is too long, it is cut and suffixed with 8 hex digits of its
SHA-256, so the mapping stays deterministic and distinct names stay distinct.
"""

from __future__ import annotations

import hashlib
import re

_BUS_BAD = re.compile(r"[^A-Za-z0-9._-]")  # "/" is for partner buses only
_RULE_BAD = re.compile(r"[^A-Za-z0-9._-]")
_QUEUE_BAD = re.compile(r"[^A-Za-z0-9_-]")


def _fit(name: str, bad: re.Pattern[str], limit: int) -> str:
    cleaned = bad.sub("-", name)
    if cleaned == name and len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[: limit - 9]}-{digest}"


def bus_name(prefix: str, topic: str) -> str:
    """The custom event bus for a portable topic."""
    return _fit(f"{prefix}{topic}", _BUS_BAD, 256)


def archive_name(bus: str) -> str:
    """The archive that records every event on `bus` (for replay)."""
    return _fit(f"{bus}-archive", _RULE_BAD, 48)


def rule_name(prefix: str, subscription: str) -> str:
    """The rule (on the topic's bus) that routes a subscription's events to its queue."""
    return _fit(f"{prefix}{subscription}", _RULE_BAD, 64)


def queue_name(prefix: str, subscription: str, *, fifo: bool = False) -> str:
    """The SQS queue of a subscription or dead-letter target (FIFO ones end in ".fifo")."""
    if fifo:
        return _fit(f"{prefix}{subscription}", _QUEUE_BAD, 75) + ".fifo"
    return _fit(f"{prefix}{subscription}", _QUEUE_BAD, 80)


def replay_name(rule: str, unique: str) -> str:
    """A replay name for one replay of `rule`'s events; `unique` tells replays apart."""
    return _fit(f"{rule[: 63 - len(unique)]}-{unique}", _RULE_BAD, 64)
