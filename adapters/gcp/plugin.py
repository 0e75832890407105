"""Registers the ``gcp`` adapter (Google Cloud Pub/Sub; the SDK is the polybus[gcp] extra)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from polybus.adapters.gcp.config import SECRET_KEYS, parse_config
from polybus.core.contract import Adapter
from polybus.core.hookspecs import AdapterInfo, hookimpl


def make_adapter(settings: Mapping[str, Any]) -> Adapter:
    """A Pub/Sub adapter from the ``[gcp]`` section (validated before any network call)."""
    config = parse_config(settings)
    from polybus.adapters.gcp.adapter import PubSubAdapter  # the SDK is optional: import it lazily

    return PubSubAdapter(config)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Google Cloud Pub/Sub: topics and streaming-pull subscriptions (or the polybus emulator)."""
    register(
        AdapterInfo(
            name="gcp",
            factory=make_adapter,
            description="Google Cloud Pub/Sub, streaming pull (google-cloud-pubsub client)",
            secret_keys=SECRET_KEYS,
        )
    )
