"""Small helpers shared by the contract tests."""

from __future__ import annotations

import time
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.contract import Adapter, Delivery
from polybus.core.filters import canonical_string

WAIT = 15.0  # seconds a cloud adapter may take to route an event to its subscription


def receive_n(
    adapter: Adapter, subscription: str, n: int, timeout: float = WAIT, dead: bool = False
) -> list[Delivery]:
    """Receive until `n` deliveries arrived or `timeout` passed."""
    out: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        step = min(1.0, max(0.05, deadline - time.monotonic()))
        receive = adapter.receive_dead_letters if dead else adapter.receive
        out.extend(receive(subscription, n - len(out), step))
    return out


def portable_view(event: CloudEvent) -> dict[str, Any]:
    """What every transport must preserve: attributes as canonical strings, and the data."""
    attrs = {k: canonical_string(v) for k, v in event.get_attributes().items() if v is not None}
    return {"attributes": attrs, "data": event.get_data()}
