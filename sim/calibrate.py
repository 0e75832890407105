"""Fit a broker profile's publish and delivery latencies from a live run's spans (``polybus sim calibrate``).

Input: JSON lines of span records (core/tracing/records.py), as written by
``polybus demo --trace-out`` or ``polybus sim live --trace-out``. A PRODUCER
span ``send {topic}`` lasts the publish; a CONSUMER span whose parent is a
PRODUCER starts after the delivery latency (consumer start minus producer
end). Deliveries that waited for a busy worker (``polybus.sim.queued``) are
left out: their wait is queueing, which the model adds itself.

Each sample is fitted with a log-normal by maximum likelihood (mu and sigma
of the logs), with the Kolmogorov-Smirnov statistic D as the goodness of fit.
The profile written is the base profile with both latencies replaced, each
field's ``source`` saying where the number came from, plus a
``calibration`` block: source file, date, n, fit, D.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.core.tracing.records import SpanRecord
from polybus.sim.distributions import LogNormal, parse_distribution

MIN_SAMPLES = 10
EMPIRICAL_POINTS = 200
FITS = ("lognormal", "empirical")
SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service",
    "start_ns",
    "end_ns",
)


@dataclass(frozen=True)
class Fit:
    """A log-normal fitted by maximum likelihood, and how well it fits (Kolmogorov-Smirnov D)."""

    n: int
    mu: float
    sigma: float
    ks: float

    @property
    def median(self) -> float:
        """exp(mu), seconds."""
        return math.exp(self.mu)

    @property
    def p99(self) -> float:
        """The fitted 99th percentile, seconds."""
        return math.exp(self.mu + 2.326347874 * self.sigma)

    def distribution(self) -> dict[str, Any]:
        """The scenario/profile form: ``{dist: lognormal, median, sigma}``."""
        return {"dist": "lognormal", "median": float(f"{self.median:.6g}"),
                "sigma": float(f"{self.sigma:.4g}")}  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    """Both fits and where their samples came from."""

    source: str
    publish: Fit
    delivery: Fit
    skipped_queued: int
    provider: str
    publish_samples: tuple[float, ...] = ()
    delivery_samples: tuple[float, ...] = ()


def fit_lognormal(samples: Sequence[float], what: str = "samples") -> Fit:
    """Maximum-likelihood log-normal of the positive `samples`, with the KS statistic D."""
    xs = np.asarray([x for x in samples if x > 0 and math.isfinite(x)], dtype=float)
    if len(xs) < MIN_SAMPLES:
        raise ConfigError(
            "calibrate", [Problem(what, len(xs), f"needs at least {MIN_SAMPLES} positive samples")]
        )
    logs = np.log(xs)
    mu, sigma = float(logs.mean()), float(logs.std())
    sigma = max(sigma, 1e-9)
    z = np.sort((logs - mu) / (sigma * math.sqrt(2)))
    cdf = 0.5 * (1 + np.array([math.erf(v) for v in z]))
    n = len(xs)
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return Fit(n=n, mu=mu, sigma=sigma, ks=float(max(upper.max(), lower.max())))


def read_spans(path: str | Path) -> list[SpanRecord]:
    """Span records from a JSON-lines file; a bad line is a ConfigError naming its number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            str(path), [Problem("<file>", str(path), f"cannot be read: {exc}")]
        ) from exc
    records, problems = [], []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            missing = [k for k in SPAN_FIELDS if k not in raw]
            if missing:
                problems.append(Problem(f"line {i}", line[:60], f"missing span field(s) {missing}"))
                continue
            records.append(
                SpanRecord(**{k: raw[k] for k in SPAN_FIELDS}, attributes=raw.get("attributes", {}))
            )
        except (json.JSONDecodeError, TypeError) as exc:
            problems.append(Problem(f"line {i}", line[:60], f"is not a span record: {exc}"))
        if len(problems) >= 10:
            break
    if problems:
        raise ConfigError(str(path), problems)
    return records


def latencies(records: Iterable[SpanRecord]) -> tuple[list[float], list[float], int]:
    """Publish latencies (PRODUCER durations), delivery latencies (CONSUMER start - PRODUCER end), queued skipped."""
    records = list(records)
    producers = {r.span_id: r for r in records if r.kind == "PRODUCER"}
    publish = [(r.end_ns - r.start_ns) / 1e9 for r in producers.values()]
    delivery, queued = [], 0
    for r in records:
        parent = producers.get(r.parent_span_id or "")
        if r.kind != "CONSUMER" or parent is None:
            continue
        if r.attributes.get("polybus.sim.queued"):
            queued += 1
            continue
        delivery.append((r.start_ns - parent.end_ns) / 1e9)
    return publish, delivery, queued


def calibrate(path: str | Path, provider: str = "local") -> Calibration:
    """Fit publish and delivery latency from the spans in `path`."""
    publish, delivery, queued = latencies(read_spans(path))
    return Calibration(
        source=str(path),
        publish=fit_lognormal(publish, "publish spans (PRODUCER)"),
        delivery=fit_lognormal(delivery, "deliveries (CONSUMER spans with a PRODUCER parent)"),
        skipped_queued=queued,
        provider=provider,
        publish_samples=tuple(publish),
        delivery_samples=tuple(delivery),
    )


def empirical(samples: Sequence[float], points: int = EMPIRICAL_POINTS) -> dict[str, Any]:
    """The sample as an empirical distribution of `points` evenly spaced quantiles (keeps the tail)."""
    xs = np.asarray([x for x in samples if x > 0 and math.isfinite(x)], dtype=float)
    qs = np.quantile(xs, (np.arange(points) + 0.5) / points)
    return {"dist": "empirical", "samples": [float(f"{q:.6g}") for q in qs]}


def profile_document(
    cal: Calibration, base: Mapping[str, Any], today: str | None = None, fit: str = "lognormal"
) -> dict[str, Any]:
    """The base profile with both latencies replaced by the fits (or empirical quantiles), with provenance."""
    if fit not in FITS:
        raise ConfigError("calibrate", [Problem("fit", fit, f"must be one of {', '.join(FITS)}")])
    read = today or datetime.now(UTC).date().isoformat()
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, f, xs in (
        ("publish_latency", cal.publish, cal.publish_samples),
        ("delivery_latency", cal.delivery, cal.delivery_samples),
    ):
        lognormal = fit == "lognormal" or not xs
        how = (
            f"log-normal MLE, n={f.n}, KS D={f.ks:.3f}"
            if lognormal
            else f"{EMPIRICAL_POINTS} empirical quantiles of n={f.n} (log-normal KS D={f.ks:.3f})"
        )
        doc[key] = {
            "value": f.distribution() if lognormal else empirical(xs),
            "source": f"fitted by polybus sim calibrate from {cal.source}: {how}",
            "read": read,
        }
    doc["calibration"] = {
        "source": cal.source, "date": read, "method": "log-normal maximum likelihood; KS statistic D", "written_as": fit,
        "skipped_queued_deliveries": cal.skipped_queued,
        **{k: {"n": f.n, "mu": f.mu, "sigma": f.sigma, "median": f.median, "p99": f.p99, "ks": f.ks}
           for k, f in (("publish_latency", cal.publish), ("delivery_latency", cal.delivery))},
    }  # fmt: skip
    return doc


def write_profile(
    cal: Calibration, base: Mapping[str, Any], out: str | Path, fit: str = "lognormal"
) -> Path:
    """Write the calibrated profile YAML to `out`."""
    out = Path(out)
    header = f"# Calibrated {cal.provider} profile: latencies fitted from {cal.source}.\n"
    text = yaml.safe_dump(profile_document(cal, base, fit=fit), sort_keys=False)
    out.write_text(header + text, encoding="utf-8")
    return out


def latency_overrides(path: str | Path) -> dict[str, Any]:
    """A calibrated profile's publish and delivery latencies as topic overrides (checked)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            str(path), [Problem("<file>", str(path), f"cannot be read: {exc}")]
        ) from exc
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key in ("publish_latency", "delivery_latency"):
        entry = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(entry, dict) or "value" not in entry:
            problems.append(Problem(key, entry, "must be {value: <distribution>, source, read}"))
            continue
        parse_distribution(entry["value"], key, problems)
        out[key] = entry["value"]
    if problems:
        raise ConfigError(str(path), problems)
    return out


def lognormal_of(fit: Fit) -> LogNormal:
    """The fitted distribution as the simulator's LogNormal."""
    return LogNormal(fit.mu, fit.sigma)
