"""The ``[gcp]`` configuration section, validated before any network call."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polybus.core import codecs
from polybus.core.config import check_keys
from polybus.core.errors import ConfigError, Problem

KEYS: dict[str, type | tuple[type, ...]] = {
    "project": str,
    "emulator_host": str,
    "content_mode": str,
    "event_format": str,
    "ordering_keys": bool,
    "batch_max_messages": int,
    "batch_max_bytes": int,
    "batch_max_latency": (int, float),
    "max_outstanding_messages": int,
    "max_outstanding_bytes": int,
    "retain_acked": bool,
    "publish_timeout": (int, float),
    "monitoring_endpoint": str,
}
SECRET_KEYS: tuple[str, ...] = ()  # credentials come from Application Default Credentials
CONTENT_MODES = ("binary", "structured")
EVENT_FORMATS = tuple(codecs.FORMATS)  # json, avro, avro-compact, protobuf
_PROJECT_ID = re.compile(r"[a-z][a-z0-9\-]{4,28}[a-z0-9]|[a-z][a-z0-9.:\-]{1,62}")
_HOST_PORT = re.compile(r"[^\s:/]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


@dataclass(frozen=True)
class GcpConfig:
    """Which project, which endpoint, how events are encoded and batched.

    `emulator_host` (``host:port``) points the clients this adapter creates
    at an emulator, as PUBSUB_EMULATOR_HOST would, without touching the
    process environment; unset, the clients reach Google with Application
    Default Credentials. `content_mode` is the CloudEvents binding's mode
    used for publishing (both modes are always read); `event_format` is the
    structured mode's event format (json, avro, avro-compact, protobuf; all
    are always read). `ordering_keys` sets
    each message's ordering key from the event's ``partitionkey`` extension.
    The batch settings are the PublisherClient's; the outstanding limits are
    the streaming pull's flow control per subscription.
    `monitoring_endpoint` (``http(s)://host[:port]``) is where backlog_stats
    reads Cloud Monitoring (monitoring.py); unset, it is
    https://monitoring.googleapis.com, except with `emulator_host`, where the
    emulator's own backlog call answers instead. Set it to the emulator's
    Monitoring stand-in to read the gauges the way real Pub/Sub is read.
    """

    project: str = "polybus-local"
    emulator_host: str | None = None
    content_mode: str = "binary"
    event_format: str = "json"
    ordering_keys: bool = True
    batch_max_messages: int = 100
    batch_max_bytes: int = 1_000_000
    batch_max_latency: float = 0.005
    max_outstanding_messages: int = 1000
    max_outstanding_bytes: int = 100 * 1024 * 1024
    retain_acked: bool = True
    publish_timeout: float = 60.0
    monitoring_endpoint: str | None = None


def parse_config(settings: Mapping[str, Any]) -> GcpConfig:
    """Validate the section; ConfigError lists every problem at once."""
    check_keys("gcp", settings, KEYS)
    problems: list[Problem] = []
    defaults = GcpConfig()

    def get(key: str) -> Any:
        return settings.get(key, getattr(defaults, key))

    project = get("project")
    if not _PROJECT_ID.fullmatch(project):
        problems.append(Problem("gcp.project", project, "must be a Google Cloud project id"))
    host = settings.get("emulator_host")
    if host is not None and not _HOST_PORT.fullmatch(host):
        problems.append(Problem("gcp.emulator_host", host, "must be host:port (no scheme)"))
    if get("content_mode") not in CONTENT_MODES:
        problems.append(
            Problem("gcp.content_mode", get("content_mode"), "must be 'binary' or 'structured'")
        )
    fmt = get("event_format")
    if fmt not in EVENT_FORMATS:
        problems.append(
            Problem("gcp.event_format", fmt, f"must be one of {', '.join(EVENT_FORMATS)}")
        )
    elif fmt != "json" and get("content_mode") != "structured":
        problems.append(
            Problem(
                "gcp.event_format",
                fmt,
                "an event format other than json needs content_mode = 'structured'",
            )
        )
    bounds = {
        "batch_max_messages": (1, 1000),
        "batch_max_bytes": (1, 10_000_000),
        "max_outstanding_messages": (1, 1_000_000),
        "max_outstanding_bytes": (1, 1 << 40),
    }
    for key, (low, high) in bounds.items():
        if not low <= get(key) <= high:
            problems.append(Problem(f"gcp.{key}", get(key), f"must be {low}..{high}"))
    if not 0 <= get("batch_max_latency") <= 10:
        problems.append(
            Problem("gcp.batch_max_latency", get("batch_max_latency"), "must be 0..10 seconds")
        )
    monitoring = settings.get("monitoring_endpoint")
    if monitoring is not None and not monitoring.startswith(("http://", "https://")):
        problems.append(
            Problem("gcp.monitoring_endpoint", monitoring, "must start with http:// or https://")
        )
    if get("publish_timeout") <= 0:
        problems.append(Problem("gcp.publish_timeout", get("publish_timeout"), "must be > 0"))
    if problems:
        raise ConfigError("invalid [gcp] settings", problems)
    return GcpConfig(
        project=project,
        emulator_host=host,
        content_mode=get("content_mode"),
        event_format=fmt,
        ordering_keys=get("ordering_keys"),
        batch_max_messages=get("batch_max_messages"),
        batch_max_bytes=get("batch_max_bytes"),
        batch_max_latency=float(get("batch_max_latency")),
        max_outstanding_messages=get("max_outstanding_messages"),
        max_outstanding_bytes=get("max_outstanding_bytes"),
        retain_acked=get("retain_acked"),
        publish_timeout=float(get("publish_timeout")),
        monitoring_endpoint=None if monitoring is None else monitoring.rstrip("/"),
    )
