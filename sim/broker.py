"""Provider profiles for the simulated broker, and the monthly cost of a workload.

Profiles are data files each adapter plugin registers (adapters/<p>/sim_profile.yaml,
sim/profiles/ideal.yaml; see sim.profiles); every field is
``{value, source, read}`` so each number says where it comes from and when it
was read. A topic in a topology may override any field (e.g. ``publish_quota``
for a raised limit, ``batch_size`` for a batching publisher).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.sim.distributions import Distribution, parse_distribution
from polybus.sim.profiles import profile_paths

SECONDS_PER_MONTH = 30 * 86400
NUMERIC_FIELDS = (
    "batch_size", "linger", "max_attempts", "max_age", "retry_initial",
    "retry_multiplier", "retry_max", "throttle_retries", "throttle_backoff",
)  # fmt: skip


@dataclass(frozen=True)
class BrokerProfile:
    """How a provider's broker behaves in the model (see each profile's sources)."""

    provider: str
    publish_latency: Distribution
    delivery_latency: Distribution
    publish_quota: float | None
    delivery_quota: float | None
    batch_size: int = 1
    linger: float = 0.0
    max_attempts: int = 5
    max_age: float = 86400.0
    retry_initial: float = 0.1
    retry_multiplier: float = 2.0
    retry_max: float = 60.0
    throttle_retries: int = 0
    throttle_backoff: float = 0.0
    pricing: Mapping[str, Any] = field(default_factory=dict)
    event_bytes: int = 1024

    def retry_delay(self, attempt: int) -> float:
        """Broker's wait before redelivery after failed attempt `attempt` (1-based)."""
        return min(self.retry_max, self.retry_initial * self.retry_multiplier ** (attempt - 1))

    def throttle_delay(self, retry: int) -> float:
        """Publisher's wait before retry number `retry` (0-based) after a throttled request."""
        return self.throttle_backoff * 2.0**retry


@cache
def _profile_document(name: str) -> dict[str, Any]:
    paths = profile_paths()
    if name not in paths:
        raise ConfigError(
            "unknown simulation profile",
            [Problem("provider", name, f"must be one of {', '.join(sorted(paths))}")],
        )
    path = paths[name]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def profile_sources(name: str) -> dict[str, dict[str, Any]]:
    """Each field of profile `name` with its value, source and date read (for reports)."""
    doc = _profile_document(name)
    return {k: dict(v) for k, v in doc.items() if isinstance(v, dict) and "source" in v}


def load_profile(name: str, overrides: Mapping[str, Any] | None = None) -> BrokerProfile:
    """The profile of provider `name` with a topic's `overrides` applied."""
    doc = _profile_document(name)
    values = {k: v["value"] for k, v in doc.items() if isinstance(v, dict) and "value" in v}
    values.update(overrides or {})
    problems: list[Problem] = []
    where = f"profile {name}"
    pub = parse_distribution(values["publish_latency"], f"{where}.publish_latency", problems)
    dlv = parse_distribution(values["delivery_latency"], f"{where}.delivery_latency", problems)
    if problems:
        raise ConfigError(str(profile_paths()[name]), problems)
    numbers = {k: values[k] for k in NUMERIC_FIELDS if k in values}
    profile = BrokerProfile(
        provider=name,
        publish_latency=pub,
        delivery_latency=dlv,
        publish_quota=None
        if values.get("publish_quota") is None
        else float(values["publish_quota"]),
        delivery_quota=None
        if values.get("delivery_quota") is None
        else float(values["delivery_quota"]),
        pricing=dict(values.get("pricing") or {}),
        event_bytes=int(values.get("event_bytes", 1024)),
    )
    return replace(
        profile,
        batch_size=int(numbers.get("batch_size", 1)),
        linger=float(numbers.get("linger", 0.0)),
        max_attempts=int(numbers.get("max_attempts", 5)),
        max_age=float(numbers.get("max_age", 86400.0)),
        retry_initial=float(numbers.get("retry_initial", 0.1)),
        retry_multiplier=float(numbers.get("retry_multiplier", 2.0)),
        retry_max=float(numbers.get("retry_max", 60.0)),
        throttle_retries=int(numbers.get("throttle_retries", 0)),
        throttle_backoff=float(numbers.get("throttle_backoff", 0.0)),
    )


def monthly_cost(
    profile: BrokerProfile, events_per_s: float, deliveries_per_s: float, requests_per_s: float
) -> float:
    """USD per 30-day month for this rate of published events, delivery attempts and publish requests.

    EventBridge bills published events per 64 KB chunk; Event Grid bills
    operations (ingress + delivery attempts) per 64 KB; Pub/Sub bills bytes of
    publish and delivery throughput with a 1,000-byte minimum per request.
    """
    price = profile.pricing
    unit = price.get("unit", "none")
    size = profile.event_bytes
    if unit in ("events", "operations"):
        chunks = math.ceil(size / (float(price.get("chunk_kb", 64)) * 1024))
        per_s = events_per_s + (deliveries_per_s if price.get("deliveries_billed") else 0.0)
        units = per_s * chunks * SECONDS_PER_MONTH - float(price.get("free_per_month", 0))
        return max(0.0, units) / 1e6 * float(price["price_per_million"])
    if unit == "bytes":
        per_request = max(
            float(price.get("min_request_bytes", 0)),
            events_per_s / max(requests_per_s, 1e-12) * size,
        )
        publish_bytes = requests_per_s * per_request
        delivery_bytes = deliveries_per_s * max(size, float(price.get("min_request_bytes", 0)))
        total = (publish_bytes + delivery_bytes) * SECONDS_PER_MONTH
        billable = max(0.0, total - float(price.get("free_gib_per_month", 0)) * 2**30)
        return billable / 2**40 * float(price["price_per_tib"])
    return 0.0
