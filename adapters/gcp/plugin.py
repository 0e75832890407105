"""Registers the ``gcp`` adapter (Google Cloud Pub/Sub; the SDK is the polybus[gcp] extra).

Nothing here imports the SDK: the adapter and the emulator are imported when
first made. The capabilities are what the adapter honours, natively or by
making up the difference itself (provisioning.py):
- ordering: ``enable_message_ordering`` plus ordering keys from ``partitionkey``;
- replay: Seek to a time (``GcpAdapter.replay``; acked events need
  ``retain_acked``, the default; at most 7 days back);
- dead letters: Pub/Sub's dead-letter policy (5..100 attempts); for 1..4
  attempts the adapter dead-letters itself, so the whole 1..100 is honoured;
- ack_deadline: Pub/Sub's ``ack_deadline_seconds`` range, 10..600 s (whole
  seconds: a fraction is rounded up); shorter deadlines are refused rather
  than stretched;
- filters: native Pub/Sub subscription filters plus a client-side residual;
- delivery is at-least-once (exactly-once delivery is not used);
- events up to 10 MB (decimal) counted as data + attribute keys and values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polybus.adapters.gcp import filters, mapping
from polybus.adapters.gcp.config import SECRET_KEYS, parse_config
from polybus.core.capabilities import Capabilities
from polybus.core.config import SettingsSchema
from polybus.core.contract import Adapter, SubscriptionSpec
from polybus.core.emulation import EmulatorSpec, RunningEmulator
from polybus.core.extras import Requirement
from polybus.core.hookspecs import AdapterInfo, FilterSupport, hookimpl
from polybus.core.provisioning_plan import (
    ListedSubscription,
    ProvisioningPlan,
    ProvisioningSupport,
)
from polybus.core.sizing import Sizing

CAPABILITIES = Capabilities(
    ordering=True,
    replay=True,
    native_dead_letter=True,
    native_filters=True,
    delivery_attempts=(1, 100),
    ack_deadline=(10.0, 600.0),
    delivery_modes=("pull",),
    max_event_size=mapping.SIZE_LIMIT.limit,
    exactly_once=False,
)


def make_adapter(settings: Mapping[str, Any]) -> Adapter:
    """A Pub/Sub adapter from the ``[gcp]`` section (validated before any network call)."""
    config = parse_config(settings)
    from polybus.adapters.gcp.adapter import GcpAdapter  # the SDK is optional: import it lazily

    return GcpAdapter(config)


def start_emulator(host: str, port: int) -> RunningEmulator:
    """Start polybus's Pub/Sub emulator (imported only now: it needs grpc and the SDK)."""
    from polybus.adapters.gcp import emulator

    return emulator.start(host, port)


def plan(
    section: Mapping[str, Any], specs: Sequence[SubscriptionSpec], publications: Sequence[str]
) -> ProvisioningPlan:
    """What the adapter creates for `specs` (plan.py; imported only now)."""
    from polybus.adapters.gcp.plan import plan as build

    return build(section, specs, publications)


def list_subscriptions(adapter: Any) -> Sequence[ListedSubscription]:
    """The subscriptions polybus made on the provider (plan.py; imported only now)."""
    from polybus.adapters.gcp.plan import list_subscriptions as listing

    return listing(adapter)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Google Cloud Pub/Sub: topics and streaming-pull subscriptions (or the polybus emulator)."""
    register(
        AdapterInfo(
            name="gcp",
            factory=make_adapter,
            description="Google Cloud Pub/Sub, streaming pull (google-cloud-pubsub client)",
            capabilities=CAPABILITIES,
            sizing=Sizing(mapping.SIZE_LIMIT, mapping.event_size),
            filters=FilterSupport(filters.compile_filter, "Pub/Sub subscription filter"),
            emulator=EmulatorSpec(
                "Google Pub/Sub (gRPC) emulator; the client finds it through PUBSUB_EMULATOR_HOST",
                8085,
                start=start_emulator,
                requires=Requirement("the gcp emulator", ("grpc", "google.cloud.pubsub_v1"), "gcp"),
            ),
            requires=Requirement("the gcp adapter", ("google.cloud.pubsub_v1",), "gcp"),
            secret_keys=SECRET_KEYS,
            sim_profile=Path(__file__).parent / "sim_profile.yaml",
            settings=SettingsSchema(parse_config),
            provisioning=ProvisioningSupport(plan, list_subscriptions),
        )
    )
