"""The ``[azure]`` configuration section, validated before any network call."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polybus.core.config import check_keys
from polybus.core.errors import ConfigError, Problem

KEYS: dict[str, type | tuple[type, ...]] = {
    "endpoint": str,
    "key": str,
    "namespace": bool,
    "admin": bool,
    "topics": dict,
    "subscriptions": dict,
    "timeout": (int, float),
    "retries": int,
    "ack_flush_interval": (int, float),
    "delivery": str,
    "webhook_host": str,
    "webhook_port": int,
    "webhook_url": str,
    "settle_timeout": (int, float),
    "close_timeout": (int, float),
    "webhook_secret": str,
    "credential": str,
    "arm_subscription": str,
    "arm_resource_group": str,
    "arm_namespace": str,
    "arm_endpoint": str,
    "arm_dead_letter_container": str,
}
CREDENTIALS = ("key", "default")
ARM_KEYS = ("arm_subscription", "arm_resource_group", "arm_namespace")
# Read when the file leaves them out, so a key never has to be written to a file.
ENVIRONMENT = {"endpoint": "POLYBUS_AZURE_ENDPOINT", "key": "POLYBUS_AZURE_KEY"}
DELIVERY_MODES = ("pull", "push")
MAX_SETTLE_TIMEOUT = 30.0  # Event Grid gives up on a webhook request after 30 s
SECRET_KEYS = ("key", "webhook_secret")


@dataclass(frozen=True)
class AzureConfig:
    """Where Event Grid is and how to talk to it.

    `endpoint` is the namespace endpoint (``https://<ns>.<region>-1.eventgrid.azure.net``)
    or the emulator's URL; `key` its access key. `namespace` publishes to
    namespace topics (default) or, when false, to basic topics. `admin` says
    the endpoint is the polybus emulator, whose admin API creates topics and
    subscriptions (and only then is an admin client built); against real Azure
    they must exist already. `topics` maps
    portable topic names to Event Grid topic names (for basic topics: to the
    topic's endpoint URL); `subscriptions` maps subscription names to their
    portable topic for consumers that do not provision. `delivery` is
    ``"pull"`` (namespace event subscriptions) or ``"push"`` (basic topics,
    ``namespace = false``: webhook subscriptions delivering to a receiver the
    adapter serves on `webhook_host`:`webhook_port`, reachable as
    `webhook_url` when set); a pushed request stays open at most
    `settle_timeout` seconds (below Event Grid's 30 s) waiting for the consumer.
    Each webhook URL carries a token derived from `webhook_secret` (random per
    process when empty: set it when the URLs are registered in ARM, so they
    survive a restart). `close` settles what it can within `close_timeout`.
    `credential` is ``"key"`` or ``"default"`` (Entra ID via DefaultAzureCredential);
    the three `arm_*` names make the adapter provision through Azure Resource
    Manager at `arm_endpoint` (arm.py), as `admin` does on the emulator.
    """

    endpoint: str
    key: str
    namespace: bool = True
    admin: bool = False
    topics: Mapping[str, str] = field(default_factory=dict)
    subscriptions: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    retries: int = 2
    ack_flush_interval: float = 0.05
    delivery: str = "pull"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 0
    webhook_url: str = ""
    settle_timeout: float = 25.0
    close_timeout: float = 5.0
    webhook_secret: str = ""
    credential: str = "key"
    arm_subscription: str = ""
    arm_resource_group: str = ""
    arm_namespace: str = ""
    arm_endpoint: str = "https://management.azure.com"
    arm_dead_letter_container: str = ""

    @property
    def arm(self) -> bool:
        """Whether topics and subscriptions are provisioned through ARM (real Azure)."""
        return bool(self.arm_subscription)


def parse_config(
    settings: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> AzureConfig:
    """Validate the ``[azure]`` section; ConfigError lists every problem at once (no network).

    `endpoint` and `key` missing from the section come from ``POLYBUS_AZURE_ENDPOINT``
    and ``POLYBUS_AZURE_KEY``.
    """
    check_keys("azure", settings, KEYS)
    env = os.environ if environ is None else environ
    settings = {**{k: env[v] for k, v in ENVIRONMENT.items() if env.get(v)}, **settings}
    problems = []
    endpoint = settings.get("endpoint")
    if not endpoint:
        problems.append(Problem("azure.endpoint", endpoint, "required (namespace or emulator URL)"))
    elif not str(endpoint).startswith(("http://", "https://")):
        problems.append(Problem("azure.endpoint", endpoint, "must start with http:// or https://"))
    credential = settings.get("credential", "key")
    if credential not in CREDENTIALS:
        problems.append(
            Problem("azure.credential", credential, "must be 'key' or 'default' (Entra ID)")
        )
    elif credential == "key" and not settings.get("key"):
        problems.append(
            Problem(
                "azure.key",
                "***" if "key" in settings else None,
                f"required with credential = 'key' (or set {ENVIRONMENT['key']})",
            )
        )
    given_arm = [k for k in ARM_KEYS if settings.get(k)]
    if given_arm and len(given_arm) != len(ARM_KEYS):
        missing = [k for k in ARM_KEYS if k not in given_arm]
        problems.append(
            Problem(f"azure.{missing[0]}", None, f"ARM provisioning needs all of {', '.join(ARM_KEYS)}")
        )
    if given_arm and settings.get("admin"):
        problems.append(
            Problem("azure.admin", True, "admin (the emulator's API) and arm_* exclude each other")
        )
    if credential == "default" and not settings.get("namespace", True):
        problems.append(
            Problem("azure.credential", credential, "Entra ID is supported for namespace topics only")
        )
    if given_arm and not settings.get("namespace", True):
        problems.append(Problem("azure.namespace", False, "ARM provisioning creates namespace topics"))
    for name in ("topics", "subscriptions"):
        table = settings.get(name, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            problems.append(Problem(f"azure.{name}", table, "must map names to strings"))
    if settings.get("timeout", 30.0) <= 0:
        problems.append(Problem("azure.timeout", settings.get("timeout"), "must be > 0 seconds"))
    if not 0 <= settings.get("retries", 2) <= 10:
        problems.append(Problem("azure.retries", settings.get("retries"), "must be 0..10"))
    if settings.get("ack_flush_interval", 0.05) < 0:
        problems.append(
            Problem("azure.ack_flush_interval", settings.get("ack_flush_interval"), "must be >= 0")
        )
    delivery = settings.get("delivery", "pull")
    if delivery not in DELIVERY_MODES:
        problems.append(Problem("azure.delivery", delivery, "must be 'pull' or 'push'"))
    elif delivery == "push" and settings.get("namespace", True):
        problems.append(
            Problem(
                "azure.namespace", settings.get("namespace", True), "push needs namespace = false"
            )
        )
    if not 0 <= settings.get("webhook_port", 0) <= 65535:
        problems.append(
            Problem("azure.webhook_port", settings.get("webhook_port"), "must be 0..65535")
        )
    webhook_url = settings.get("webhook_url", "")
    if webhook_url and not str(webhook_url).startswith(("http://", "https://")):
        problems.append(Problem("azure.webhook_url", webhook_url, "must start with http(s)://"))
    if not 0 < settings.get("settle_timeout", 25.0) < MAX_SETTLE_TIMEOUT:
        problems.append(
            Problem("azure.settle_timeout", settings.get("settle_timeout"), "must be in (0, 30) s")
        )
    if not 0 < settings.get("close_timeout", 5.0) <= 60:
        problems.append(
            Problem("azure.close_timeout", settings.get("close_timeout"), "must be in (0, 60] s")
        )
    if problems:
        raise ConfigError("invalid [azure] settings", problems)
    return AzureConfig(
        endpoint=str(settings["endpoint"]).rstrip("/"),
        key=str(settings.get("key", "")),
        namespace=settings.get("namespace", True),
        admin=settings.get("admin", False),
        topics=dict(settings.get("topics", {})),
        subscriptions=dict(settings.get("subscriptions", {})),
        timeout=float(settings.get("timeout", 30.0)),
        retries=int(settings.get("retries", 2)),
        ack_flush_interval=float(settings.get("ack_flush_interval", 0.05)),
        delivery=str(delivery),
        webhook_host=str(settings.get("webhook_host", "127.0.0.1")),
        webhook_port=int(settings.get("webhook_port", 0)),
        webhook_url=str(webhook_url),
        settle_timeout=float(settings.get("settle_timeout", 25.0)),
        close_timeout=float(settings.get("close_timeout", 5.0)),
        webhook_secret=str(settings.get("webhook_secret", "")),
        credential=str(credential),
        arm_subscription=str(settings.get("arm_subscription", "")),
        arm_resource_group=str(settings.get("arm_resource_group", "")),
        arm_namespace=str(settings.get("arm_namespace", "")),
        arm_endpoint=str(settings.get("arm_endpoint", "https://management.azure.com")).rstrip("/"),
        arm_dead_letter_container=str(settings.get("arm_dead_letter_container", "")),
    )
