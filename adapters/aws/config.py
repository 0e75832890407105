"""The AWS adapter's settings, read from the provider's configuration section.

Keys (`KEYS`): region, endpoint_url, bus_prefix, queue_prefix, wait_time,
archive and archive_retention_days; an unknown key is refused with a
did-you-mean. Credentials never appear here (`SECRET_KEYS` is empty): boto3
takes them from the standard AWS chain (environment, shared files, SSO,
instance roles). A key that looks like a credential is refused with its value
redacted, so a misplaced secret is never echoed into a log. No network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polybus.core.config import unknown_key_problem
from polybus.core.errors import ConfigError, Problem

DEFAULT_REGION = "us-east-1"
MAX_WAIT_TIME = 20  # SQS long polling waits at most 20 s per ReceiveMessage
_PREFIX_CHARS = re.compile(r"^[A-Za-z0-9_-]*$")
_CREDENTIAL_HINTS = ("secret", "access_key", "session_token", "password", "credential")
#: The allowed keys and their TOML types (values are checked further in parse_config).
KEYS: dict[str, type | tuple[type, ...]] = {
    "region": str,
    "endpoint_url": str,
    "bus_prefix": str,
    "queue_prefix": str,
    "wait_time": (int, float),
    "archive": bool,
    "archive_retention_days": int,
}
#: Settings never printed: none, credentials come only from the standard AWS chain.
SECRET_KEYS: tuple[str, ...] = ()


@dataclass(frozen=True)
class AwsConfig:
    """Validated settings for one AWS adapter instance."""

    region: str | None = None
    endpoint_url: str | None = None
    bus_prefix: str = "polybus-"
    queue_prefix: str = "polybus-"
    wait_time: float = MAX_WAIT_TIME
    archive: bool = True
    archive_retention_days: int = 7


def parse_config(section: Mapping[str, Any]) -> AwsConfig:
    """Read and check the `aws` configuration section; every problem in one ConfigError."""
    problems: list[Problem] = []
    for key in section:
        if key in KEYS:
            continue
        if any(hint in str(key).lower() for hint in _CREDENTIAL_HINTS):
            problems.append(
                Problem(
                    f"aws.{key}",
                    "<redacted>",
                    "credentials come only from the standard AWS chain (environment, "
                    "~/.aws files, SSO, instance role), never from polybus configuration",
                )
            )
        else:
            problems.append(unknown_key_problem(f"aws.{key}", key, KEYS))
    values: dict[str, Any] = {}
    region = section.get("region")
    if region is not None:
        if isinstance(region, str) and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            values["region"] = region
        else:
            problems.append(Problem("aws.region", region, "must be an AWS region like 'eu-west-1'"))
    endpoint = section.get("endpoint_url")
    if endpoint is not None:
        if isinstance(endpoint, str) and re.match(r"^https?://[^\s/]+", endpoint):
            values["endpoint_url"] = endpoint.rstrip("/")
        else:
            problems.append(
                Problem("aws.endpoint_url", endpoint, "must be an http:// or https:// URL")
            )
    for key in ("bus_prefix", "queue_prefix"):
        prefix = section.get(key)
        if prefix is None:
            continue
        if isinstance(prefix, str) and _PREFIX_CHARS.match(prefix) and len(prefix) <= 32:
            values[key] = prefix
        else:
            problems.append(
                Problem(f"aws.{key}", prefix, "must be at most 32 characters of A-Z a-z 0-9 _ -")
            )
    wait = section.get("wait_time")
    if wait is not None:
        if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= 20:
            values["wait_time"] = float(wait)
        else:
            problems.append(Problem("aws.wait_time", wait, "must be a number of seconds, 0..20"))
    archive = section.get("archive")
    if archive is not None:
        if isinstance(archive, bool):
            values["archive"] = archive
        else:
            problems.append(Problem("aws.archive", archive, "must be true or false"))
    retention = section.get("archive_retention_days")
    if retention is not None:
        if isinstance(retention, int) and not isinstance(retention, bool) and retention >= 0:
            values["archive_retention_days"] = retention
        else:
            problems.append(
                Problem(
                    "aws.archive_retention_days", retention, "must be an integer >= 0 (0 = forever)"
                )
            )
    if problems:
        raise ConfigError("invalid aws configuration", problems)
    return AwsConfig(**values)
