"""Registers the ``azure`` adapter (Event Grid; the SDK is the polybus[azure] extra).

Nothing here imports the SDK: the adapter and the emulator are imported when
first made. The capabilities are what the adapter honours in both delivery
modes (one registration covers pull and push):

- no ordering: Event Grid documents no delivery order, and a nack releases one
  event while later ones are handed out (pull); push batches keep order only
  within one request;
- no replay: Event Grid keeps no history to seek back in;
- native dead-lettering: pull subscriptions reject to a dead-letter topic,
  webhook subscriptions dead-letter what gives up;
- delivery attempts 1..30: webhook subscriptions allow ``maxDeliveryAttempts``
  1..30; pull counts 1..10 natively and goes on through a redelivery topic,
  so 30 holds in both modes;
- ack deadline up to 300 s: the longest namespace lock (push answers within
  ``settle_timeout``, below Event Grid's 30 s);
- 1 MB per event, measured as the JSON event the adapter sends;
- native filters: the subscription filter evaluates type, subject and
  presence tests (string tests stay in the residual: Event Grid ignores case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polybus.adapters.azure import config, filters, mapping
from polybus.core.capabilities import Capabilities
from polybus.core.config import SettingsSchema
from polybus.core.contract import Adapter, SubscriptionSpec
from polybus.core.emulation import EmulatorSpec, RunningEmulator
from polybus.core.extras import Requirement
from polybus.core.hookspecs import AdapterInfo, FilterSupport, hookimpl
from polybus.core.provisioning_plan import ProvisioningPlan, ProvisioningSupport
from polybus.core.sizing import Sizing

DEFAULT_EMULATOR_PORT = 8086
CAPABILITIES = Capabilities(
    ordering=False,
    replay=False,
    native_dead_letter=True,
    native_filters=True,
    delivery_attempts=(1, 30),
    ack_deadline=(0.001, 300.0),
    delivery_modes=("pull", "push"),
    max_event_size=mapping.SIZE_LIMIT.limit,
)


def make_adapter(settings: Mapping[str, Any]) -> Adapter:
    """An Event Grid adapter from the ``[azure]`` section (validated before any network call)."""
    parsed = config.parse_config(settings)
    from polybus.adapters.azure.adapter import AzureAdapter  # the SDK is optional: import it lazily

    return AzureAdapter(parsed)


def start_emulator(
    host: str = "127.0.0.1", port: int = 0, key: str | None = None
) -> RunningEmulator:
    """Start polybus's Event Grid emulator (aiohttp is imported only now).

    `key` is the access key clients must present; the default is the emulator's
    stable, public `DEFAULT_EMULATOR_KEY`, so a pasted polybus.toml survives restarts.
    """
    from polybus.adapters.azure.emulator.sas import DEFAULT_EMULATOR_KEY
    from polybus.adapters.azure.emulator.server import start_emulator as start

    return start(host, port, key or DEFAULT_EMULATOR_KEY)


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """What the adapter creates for `specs` (plan.py; imported only now)."""
    from polybus.adapters.azure.plan import plan as build

    return build(section, specs, publications)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Azure Event Grid: namespace pull or basic-topic webhook push (or the polybus emulator)."""
    register(
        AdapterInfo(
            name="azure",
            factory=make_adapter,
            description="Azure Event Grid: namespace pull or webhook push (azure-eventgrid SDK)",
            capabilities=CAPABILITIES,
            sizing=Sizing(mapping.SIZE_LIMIT, mapping.event_size),
            filters=FilterSupport(filters.compile_filter, "Event Grid subscription filter"),
            emulator=EmulatorSpec(
                "Azure Event Grid (HTTP): basic and namespace topics, admin API",
                DEFAULT_EMULATOR_PORT,
                start=start_emulator,
                requires=Requirement("the azure emulator", ("aiohttp",), "azure"),
            ),
            requires=Requirement("the azure adapter", ("azure.eventgrid",), "azure"),
            secret_keys=config.SECRET_KEYS,
            sim_profile=Path(__file__).parent / "sim_profile.yaml",
            settings=SettingsSchema(config.parse_config, config.ENVIRONMENT),
            provisioning=ProvisioningSupport(plan),
        )
    )
