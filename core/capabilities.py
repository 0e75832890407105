"""What an adapter declares it can do, and the check that refuses everything else.

Each adapter plugin registers one `Capabilities` value. The bus checks every
subscription against it at subscribe time: a subscription asking for
something the adapter does not declare (ordering on a provider without it,
more delivery attempts than it allows, replay where the provider keeps no
history) is refused with an error naming the field, the value and the rule,
never quietly emulated. The contract suite reads the same value to decide
which behaviours to test and which refusals to expect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import Problem, UnsupportedError

DeliveryMode = Literal["pull", "push"]


@dataclass(frozen=True)
class Capabilities:
    """Features an adapter supports; anything not declared is refused at subscribe time.

    - `ordering`: events sharing a ``partitionkey`` are delivered in publish order
      (``DeliveryPolicy(ordered=True)``).
    - `replay`: redeliver a topic's events since a point in time (``Bus.replay``).
    - `native_dead_letter`: the provider moves exhausted events itself.
    - `native_filters`: the provider evaluates (part of) a filter before delivery.
    - `delivery_attempts`: the range of ``max_delivery_attempts`` accepted.
    - `ack_deadline`: the range of ``ack_deadline`` seconds accepted.
    - `delivery_modes`: how events reach a consumer (pull, push or both).
    - `max_event_size`: the largest event the provider accepts, in bytes
      (None: no limit); how an event is measured is the plugin's `Sizing`.
    - `exactly_once`: the provider never redelivers an acked event.
    """

    ordering: bool = False
    replay: bool = False
    native_dead_letter: bool = False
    native_filters: bool = False
    delivery_attempts: tuple[int, int] = (1, 100)
    ack_deadline: tuple[float, float] = (0.001, 3600.0)
    delivery_modes: tuple[DeliveryMode, ...] = ("pull",)
    max_event_size: int | None = None
    exactly_once: bool = False

    def refusals(self, spec: SubscriptionSpec) -> list[Problem]:
        """Every way `spec` asks for more than these capabilities (empty when it fits)."""
        problems: list[Problem] = []
        policy = spec.policy
        if policy.ordered and not self.ordering:
            problems.append(
                Problem("policy.ordered", True, "this adapter does not declare ordered delivery")
            )
        low, high = self.delivery_attempts
        if not low <= policy.max_delivery_attempts <= high:
            problems.append(
                Problem(
                    "policy.max_delivery_attempts",
                    policy.max_delivery_attempts,
                    f"this adapter accepts {low}..{high}",
                )
            )
        low_s, high_s = self.ack_deadline
        if not low_s <= policy.ack_deadline <= high_s:
            problems.append(
                Problem(
                    "policy.ack_deadline",
                    policy.ack_deadline,
                    f"this adapter accepts {low_s:g}..{high_s:g} seconds",
                )
            )
        return problems

    def check(self, spec: SubscriptionSpec, provider: str) -> None:
        """Raise UnsupportedError naming every refused part of `spec`."""
        problems = self.refusals(spec)
        if problems:
            raise UnsupportedError(
                f"subscription {spec.name!r} asks for what provider {provider!r} does not support",
                problems,
            )

    def check_replay(self, provider: str) -> None:
        """Raise UnsupportedError unless replay is declared."""
        if not self.replay:
            raise UnsupportedError(
                f"provider {provider!r} cannot replay",
                [Problem("replay", provider, "this adapter does not declare replay")],
            )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists), for `polybus adapters --json`."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
