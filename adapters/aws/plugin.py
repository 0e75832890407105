"""Registers the `aws` adapter (EventBridge + SQS) with polybus.

Importing this module imports no SDK: config, filters and mapping need only
polybus and cloudevents; boto3 is imported when the factory runs and moto
when the emulator starts.

The capabilities, checked against the code:

- ordering: not declared. ``ordered=True`` does provision FIFO queues with one
  message group (provisioning.py), but a classic EventBridge bus does not
  guarantee the order in which it delivers to a target (target retries run
  for up to 24 h while later events go through), so the FIFO queue only keeps
  the order in which EventBridge happened to send.
- replay: archives + StartReplay (replay.py; needs ``archive = true``, the default).
- native_dead_letter: SQS's redrive policy moves a message received
  max_delivery_attempts times to the dead-letter queue, and the target's
  DeadLetterConfig catches what EventBridge cannot deliver (provisioning.py).
- delivery_attempts 1..100: provisioning writes max_delivery_attempts as the
  redrive policy's maxReceiveCount unchanged; SQS accepts 1 to 1,000 there,
  the portable DeliveryPolicy 1 to 100, so every policy value is honoured.
- ack_deadline 1..43,200 s: the queue's VisibilityTimeout, which SQS counts in
  whole seconds (provisioning rounds up) up to 12 hours.
- native_filters: rule event patterns (filters.py); pull delivery (SQS
  long polling); max_event_size 256 KB, and an entry must be *under* it
  (mapping.SIZE_LIMIT is strict); no exactly-once (SQS is at-least-once).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybus.adapters.aws import config, filters, mapping
from polybus.core.capabilities import Capabilities
from polybus.core.config import SettingsSchema
from polybus.core.contract import SubscriptionSpec
from polybus.core.emulation import EmulatorSpec
from polybus.core.extras import Requirement
from polybus.core.hookspecs import AdapterInfo, FilterSupport, hookimpl
from polybus.core.provisioning_plan import (
    ListedSubscription,
    ProvisioningPlan,
    ProvisioningSupport,
)
from polybus.core.sizing import Sizing

if TYPE_CHECKING:
    from polybus.core.contract import Adapter
    from polybus.core.emulation import RunningEmulator

CAPABILITIES = Capabilities(
    ordering=False,
    replay=True,
    native_dead_letter=True,
    native_filters=True,
    delivery_attempts=(1, 100),
    ack_deadline=(1.0, 43200.0),
    delivery_modes=("pull",),
    max_event_size=mapping.REQUEST_LIMIT,
    exactly_once=False,
)
SIZING = Sizing(mapping.SIZE_LIMIT, mapping.event_size)
REQUIRES = Requirement("the aws adapter", ("boto3",), "aws")
EMULATOR_PORT = 5000  # moto's own default
EMULATOR_REQUIRES = Requirement("the aws emulator", ("moto.server", "flask"), "aws-emulator")


def make_adapter(section: Mapping[str, Any]) -> Adapter:
    """An AwsAdapter from the `aws` config section; ConfigError before any network call."""
    settings = config.parse_config(section)
    from polybus.adapters.aws.adapter import AwsAdapter  # boto3 is the optional polybus[aws] extra

    return AwsAdapter(settings)


def start_emulator(host: str, port: int) -> RunningEmulator:
    """Start moto's server on host:port (imports moto only now)."""
    from polybus.adapters.aws.emulator import start

    return start(host, port)


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """What the adapter creates for `specs` (plan.py; imported only now)."""
    from polybus.adapters.aws.plan import plan as build

    return build(section, specs, publications)


def list_subscriptions(adapter: Any) -> Sequence[ListedSubscription]:
    """The subscriptions polybus made on the provider (plan.py; imported only now)."""
    from polybus.adapters.aws.plan import list_subscriptions as listing

    return listing(adapter)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Register the aws adapter."""
    register(
        AdapterInfo(
            name="aws",
            factory=make_adapter,
            description="Amazon EventBridge (a custom bus per topic, rules) with an SQS queue "
            "per subscription",
            capabilities=CAPABILITIES,
            sizing=SIZING,
            filters=FilterSupport(filters.compile_filter, "EventBridge event pattern"),
            emulator=EmulatorSpec(
                "moto's server: EventBridge + SQS on loopback",
                EMULATOR_PORT,
                start=start_emulator,
                requires=EMULATOR_REQUIRES,
            ),
            requires=REQUIRES,
            secret_keys=config.SECRET_KEYS,
            sim_profile=Path(__file__).parent / "sim_profile.yaml",
            settings=SettingsSchema(config.parse_config),
            provisioning=ProvisioningSupport(plan, list_subscriptions),
        )
    )
