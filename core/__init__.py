"""polybus core: the portable CloudEvents model services are written against.

No cloud SDK and nothing else of polybus is imported here; adapters, the
simulation and the CLI build on this package.
"""

from polybus.core.bus import Bus, Subscription, SubscriptionStats
from polybus.core.contract import DEFAULT_TOPIC, Adapter, Delivery, DeliveryPolicy, RetryPolicy
from polybus.core.contract import SubscriptionSpec as SubscriptionSpec
from polybus.core.errors import PolybusError
from polybus.core.events import EventFactory, attributes_of, new_event
from polybus.core.formats import from_json, to_json

__all__ = [
    "DEFAULT_TOPIC",
    "Adapter",
    "Bus",
    "Delivery",
    "DeliveryPolicy",
    "EventFactory",
    "PolybusError",
    "RetryPolicy",
    "Subscription",
    "SubscriptionSpec",
    "SubscriptionStats",
    "attributes_of",
    "from_json",
    "new_event",
    "to_json",
]
