"""polybus: a portable CloudEvents bus and a simulation harness, under one import name.

    from polybus import connect, new_event, DeliveryPolicy

    bus = connect()       # polybus.toml, $POLYBUS_CONFIG or the embedded local bus

The subpackages are polybus.core (the event model and the adapter contract,
no cloud SDK), polybus.adapters (local, aws, azure, gcp), polybus.sim,
polybus.scenarios and polybus.cli. See docs/layout.md for how the repository's
top-level folders become these subpackages.
"""

from polybus.adapters import available_adapters, connect
from polybus.app import App
from polybus.core import (
    DEFAULT_TOPIC,
    Adapter,
    Bus,
    Delivery,
    DeliveryPolicy,
    EventFactory,
    PolybusError,
    RetryPolicy,
    Subscription,
    SubscriptionSpec,
    SubscriptionStats,
    attributes_of,
    from_json,
    new_event,
    to_json,
)
from polybus.core.hookspecs import hookimpl
from polybus.core.runtime import Context

__all__ = [
    "DEFAULT_TOPIC",
    "Adapter",
    "App",
    "Bus",
    "Context",
    "Delivery",
    "DeliveryPolicy",
    "EventFactory",
    "PolybusError",
    "RetryPolicy",
    "Subscription",
    "SubscriptionSpec",
    "SubscriptionStats",
    "attributes_of",
    "available_adapters",
    "connect",
    "from_json",
    "hookimpl",
    "new_event",
    "to_json",
]
