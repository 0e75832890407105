"""Registers the `aws` adapter (EventBridge + SQS) with polybus."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from polybus.core.hookspecs import AdapterInfo, hookimpl

if TYPE_CHECKING:
    from polybus.core.contract import Adapter


def make_adapter(section: Mapping[str, Any]) -> Adapter:
    """An AwsAdapter from the `aws` config section; ConfigError before any network call."""
    from polybus.adapters.aws.config import parse_config

    config = parse_config(section)
    from polybus.adapters.aws.adapter import AwsAdapter  # boto3 is the optional polybus[aws] extra

    return AwsAdapter(config)


@hookimpl
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Register the aws adapter."""
    register(
        AdapterInfo(
            name="aws",
            factory=make_adapter,
            description="Amazon EventBridge (a custom bus per topic, rules) with an SQS queue "
            "per subscription",
            secret_keys=(),
        )
    )
