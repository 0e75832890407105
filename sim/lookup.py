"""Metric paths (``flows.checkout.latency.p99``): checked before a run, resolved after it, shown with units.

A metric path walks the JSON form of one run (docs/sim.md) down to a
summary. `check_metric` validates a path against what a scenario's topology
will report before anything is simulated (a typo is a ConfigError with a
did-you-mean), `summary_at` reads it from a finished run, and `unit_of` /
`show` format values with units and deltas for people.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from polybus.core.errors import ConfigError, Problem
from polybus.sim.engine import Model
from polybus.sim.metrics import aggregate
from polybus.sim.results import RunResult, Summary, to_json
from polybus.sim.streams import Streams
from polybus.sim.topology import Scenario

SECONDS = {"mean", "p50", "p95", "p99", "p999", "W", "Wq", "latency_mean", "drain_time", "oldest_in_progress"}  # fmt: skip
PER_SECOND = {"throughput", "lambda", "events_per_s", "deliveries_per_s", "requests_per_s"}


def skeleton(scenario: Scenario, topology: str) -> dict[str, Any]:
    """The JSON shape of a run of `topology` (every name and field it will report), without simulating."""
    model = Model(scenario, scenario.topologies[topology], Streams(0, 0))
    out = to_json(aggregate([model.rec.result(scenario.faults)]))
    assert isinstance(out, dict)
    return out


def _walk(run: Mapping[str, Any], path: str, subject: str) -> Any:
    node: Any = run
    trail: list[str] = []
    for key in path.split("."):
        where = ".".join(trail) or "a run"
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                rule = f"{where} is a list of {len(node)}: use an index 0..{len(node) - 1}"
                raise ConfigError(subject, [Problem("metric", path, rule)])
            node = node[int(key)]
        elif isinstance(node, Mapping) and key in node and not _is_summary(node):
            node = node[key]
        else:
            known = [] if _is_summary(node) or not isinstance(node, Mapping) else list(node)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            choices = f"expected one of {known}" if known else "it is already a number"
            raise ConfigError(
                subject, [Problem("metric", path, f"no {key!r} in {where}; {hint}{choices}")]
            )
        trail.append(key)
    if not _is_summary(node) and not _is_number(node):
        keys = list(node) if isinstance(node, Mapping) else []
        rule = f"names a group, not a number; continue with one of {keys}"
        raise ConfigError(subject, [Problem("metric", path, rule)])
    return node


def _is_number(node: object) -> bool:
    """A point of a series (e.g. ``p_stale.mean.2``): a number, or null where undefined."""
    return node is None or (isinstance(node, int | float) and not isinstance(node, bool))


def _is_summary(node: object) -> bool:
    return isinstance(node, Mapping) and "mean" in node and "values" in node


def check_metric(scenario: Scenario, topology: str, path: str) -> None:
    """Raise ConfigError (with a did-you-mean) unless `path` names a number a run of `topology` reports."""
    _walk(skeleton(scenario, topology), path, f"{scenario.file}: topology {topology}")


def summary_at(run: RunResult, path: str) -> Summary:
    """The summary at `path` in a finished run."""
    node = _walk(to_json(run), path, f"run {run.topology}")
    if _is_number(node):
        return Summary.of([math.nan if node is None else float(node)])
    return Summary(
        node["mean"], node["sd"], tuple(node["ci95"]), node["halfwidth"], node["n"],  # type: ignore[arg-type]
        tuple(node["values"]),
    )  # fmt: skip


def unit_of(path: str) -> str:
    """The display unit of a metric: 's' (shown in ms below 1 s), '%', '/s' or '' (a count)."""
    parts = path.split(".")
    last, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
    if last.endswith("_rate") or last == "utilisation":
        return "%"
    if last in PER_SECOND:
        return "/s"
    if parent in ("latency", "completion", "window") or last in SECONDS - {"mean"}:
        return "s"
    return ""


def show(value: float, unit: str, scale: str | None = None) -> str:
    """A value with its unit: seconds in ms or s, rates in %, else 3 significant figures."""
    if math.isnan(value):
        return "-"
    if unit == "%":
        return f"{value * 100:.3g}%"
    if unit == "s":
        if (scale or ("ms" if abs(value) < 1 else "s")) == "ms":
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    if unit == "/s":
        return f"{value:,.4g}/s"
    return f"{value:,.4g}"


def delta(before: float, after: float, unit: str) -> str:
    """The change from `before` to `after`: relative (+37%), or in points for percentages."""
    if math.isnan(before) or math.isnan(after):
        return "n/a"
    if unit == "%":
        return f"{(after - before) * 100:+.3g} points"
    if before == 0:
        return "from zero" if after else "no change"
    return f"{(after / before - 1) * 100:+.0f}%"


def transition(label: str, before: float, after: float, unit: str) -> str:
    """``p99 253 -> 347 ms (+37%)``: both values in one scale, then the delta."""
    if unit == "s":
        scale = "ms" if max(abs(before), abs(after)) < 1 else "s"
        factor = 1000 if scale == "ms" else 1
        return (
            f"{label} {before * factor:.3g} -> {after * factor:.3g} {scale} "
            f"({delta(before, after, unit)})"
        )
    return f"{label} {show(before, unit)} -> {show(after, unit)} ({delta(before, after, unit)})"
